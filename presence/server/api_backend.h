// The /v1 API's engine side (issue 7): implements api::ApiBackend by posting each query to the
// engine thread (Loop::post) and waiting, bounded, for the answer. The engine
// is never touched from an HTTP thread.
//
// Engine-thread state kept here, bounded whatever the fleet size:
// - a global ring of the last transition_ring transitions (per-device rings would cost
//   N x 1 M records); GET /v1/devices/{id} picks that device's from it;
// - per-segment state counts, rebuilt by an incremental scan (scan_per_batch devices per batch)
//   only while someone reads /v1/fleet, so a 1 M device fleet never stalls ingest for a scan.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

#include "presence/api/api.h"
#include "presence/core/policy.h"
#include "presence/ingest/hygiene.h"
#include "presence/ingest/output.h"
#include "presence/server/loop.h"

namespace presence::server {

struct ApiBackendOptions {
  std::chrono::milliseconds timeout{2000};           // engine busy longer: 503, the caller retries
  std::size_t transition_ring = 65536;               // ~2 MiB
  std::size_t transitions_per_device = 20;           // in GET /v1/devices/{id}
  std::size_t scan_per_batch = 10000;                // segment scan step (~5 ms of engine thread)
  std::size_t max_segments = 1000;                   // label key/value pairs reported by /v1/fleet
  std::chrono::milliseconds segment_interval{5000};  // pause between two segment passes
  std::size_t max_ids = 1000;                        // device ids listed per incident list
  // Server-side fleet history for the dashboard's online-share chart: one sample of the state
  // counts per history_interval, the last history_samples kept (1 h; ~30 KiB).
  std::chrono::milliseconds history_interval{10000};
  std::size_t history_samples = 360;
};

// The queries themselves, on the engine thread (no locking, no waiting): pure functions of the
// engine, the policy and the time given, so unit tests drive them with a simulated clock and
// the benchmark with a 1 M device engine. LoopApiBackend runs them through Loop::post.
class ApiQueries {
 public:
  ApiQueries(ApiBackendOptions options, ingest::WallAnchor anchor);
  ~ApiQueries();
  ApiQueries(const ApiQueries&) = delete;
  ApiQueries& operator=(const ApiQueries&) = delete;
  const ApiBackendOptions& options() const;

  // After each batch: its transitions (ring), and a segment pass step while /v1/fleet is read.
  // policy (may be nullptr) gives interned labels without copying them.
  void on_batch(const core::Engine& engine, const std::vector<core::Transition>& transitions,
                core::MonoTime now, const core::AlertPolicy* policy = nullptr);

  api::Result<api::DevicePage> devices(const core::Engine& engine, const core::AlertPolicy* policy,
                                       const api::DeviceQuery& query) const;
  api::Result<api::DeviceDetail> device(const core::Engine& engine, const core::AlertPolicy* policy,
                                        std::string_view id) const;
  api::Result<api::FleetSummary> fleet(const core::Engine& engine, core::MonoTime now,
                                       bool broker_connected,
                                       const core::AlertPolicy* policy = nullptr);
  api::Result<std::vector<api::FleetSample>> fleet_history() const;
  api::Result<std::vector<api::IncidentSummary>> incidents(const core::AlertPolicy* policy) const;
  api::Result<api::IncidentDetail> incident(const core::Engine& engine,
                                            const core::AlertPolicy* policy,
                                            std::uint32_t id) const;
  api::Result<std::vector<api::SilenceView>> silences(const core::AlertPolicy* policy) const;

  // Every alert intent handed to the outbox, in order (Alerting::submit, engine thread): the
  // record of what was sent, with the text and severity the on-call got. Notices that are not
  // pages (any action other than Trigger/Resolve) are ignored.
  void on_intents(const std::vector<core::AlertIntent>& intents);
  // The pages sent and not resolved, oldest first (GET /v1/alerts). With a policy, its firing()
  // set, each with the text it was sent with; pages sent before a restart (restored firing,
  // never re-sent) are listed with the type's own words. Without a policy (alerts.mode naive),
  // the record of intents alone.
  api::Result<std::vector<api::FiringAlertView>> alerts(const core::Engine& engine,
                                                        const core::AlertPolicy* policy) const;
  api::Result<api::SilenceView> add_silence(core::AlertPolicy* policy, const api::NewSilence& s,
                                            core::MonoTime now) const;
  api::Result<bool> remove_silence(core::AlertPolicy* policy, std::uint64_t id,
                                   core::MonoTime now) const;

 private:
  struct State;
  std::unique_ptr<State> st_;
};

class LoopApiBackend final : public api::ApiBackend {
 public:
  // The alert policy lives with the alerting glue (presence/app); policy() is called on the
  // engine thread and may return nullptr (alerts off): incidents and silences then answer 503.
  using PolicyFn = std::function<core::AlertPolicy*()>;
  // broker_connected (any thread) is reported by /v1/fleet. Add step() to the loop, after the
  // engine step, before Loop::start().
  LoopApiBackend(Loop& loop, PolicyFn policy, std::function<bool()> broker_connected,
                 ApiBackendOptions options = {});
  // "api": each batch's transitions into the ring, a segment pass step while /v1/fleet is read.
  Step step();
  ~LoopApiBackend() override;

  api::Result<api::DevicePage> devices(const api::DeviceQuery& query) override;
  api::Result<api::DeviceDetail> device(std::string_view id) override;
  api::Result<api::FleetSummary> fleet() override;
  api::Result<std::vector<api::FleetSample>> fleet_history() override;
  api::Result<std::vector<api::IncidentSummary>> incidents() override;
  api::Result<api::IncidentDetail> incident(std::uint32_t id) override;
  api::Result<std::vector<api::SilenceView>> silences() override;
  api::Result<std::vector<api::FiringAlertView>> alerts() override;
  api::Result<api::SilenceView> add_silence(const api::NewSilence& silence) override;
  // Engine thread (the alerting glue's intent observer): see ApiQueries::on_intents.
  void on_intents(const std::vector<core::AlertIntent>& intents);
  api::Result<bool> remove_silence(std::uint64_t id) override;
  // GET /v1/doctor (issue 14): the device-hygiene report, made on the engine thread by `report`
  // (the MQTT link's, set by the wiring before Loop::start()). Unset: 503.
  using HygieneFn = std::function<ingest::HygieneReport(std::size_t limit)>;
  void set_hygiene(HygieneFn report);
  api::Result<api::DoctorReport> doctor(std::size_t limit) override;

  struct Impl;  // engine-thread state; opaque (api_backend.cpp)

 private:
  std::shared_ptr<Impl> impl_;  // shared with tasks still queued on the engine thread
};

}  // namespace presence::server
