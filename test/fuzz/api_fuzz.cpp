// Fuzz target: the /v1 HTTP API (presence/api/api.*) driven in-process, no sockets: requests go
// through cpp-httplib's own request parser and router (Server::process_request on an in-memory
// stream) into the real handlers, whose backend is the real engine-thread query code
// (server::ApiQueries) over a small engine and alert policy. Query strings, paths, JSON bodies
// (silences) and headers all come from whoever can reach the port.
//
// Input: one selector byte, then
//   bit 0..2  method: GET POST DELETE PUT PATCH HEAD OPTIONS, 7 = raw (the rest is the whole
//             request as bytes on the wire)
//   bit 3     send the right bearer token
//   then      <target> \n <body>   (target = path and query string, e.g. /v1/devices?limit=2)
// Checks: every answer is a complete HTTP response, and every /v1 answer's body is JSON.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "presence/api/api.h"
#include "presence/core/engine.h"
#include "presence/core/policy.h"
#include "presence/server/api_backend.h"
#include "test/fuzz/fuzz.h"

namespace {

using namespace presence;

constexpr std::int64_t kNowMs = 5'000'000;
constexpr const char* kToken = "fuzz-token";

// A stream over an in-memory request; the response is collected in `out`.
class MemoryStream final : public httplib::Stream {
 public:
  explicit MemoryStream(std::string_view in) : in_(in) {}
  bool is_readable() const override { return pos_ < in_.size(); }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const std::size_t n = std::min(size, in_.size() - pos_);
    std::memcpy(ptr, in_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 40000;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 8080;
  }
  socket_t socket() const override { return INVALID_SOCKET; }
  std::string out;

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
};

class InProcessServer final : public httplib::Server {
 public:
  std::string handle(std::string_view request) {
    MemoryStream stream(request);
    bool closed = false;
    process_request(stream, true, closed, {});
    return std::move(stream.out);
  }
};

ingest::WallAnchor anchor() {
  ingest::WallAnchor a;
  a.mono = core::mono_ms(kNowMs);
  a.wall = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  return a;
}

// LoopApiBackend without the engine thread: the same ApiQueries, called directly.
class DirectBackend final : public api::ApiBackend {
 public:
  DirectBackend()
      : policy_({}, {}, [this](core::DeviceIndex d) { return std::string(engine_.id_of(d)); }),
        queries_({}, anchor()) {
    engine_.set_observer(&policy_);
    const char* sites[] = {"north", "south"};
    for (int i = 0; i < 6; ++i) {
      const auto d = engine_.intern("dev-" + std::to_string(i));
      engine_.set_label(d, "site", sites[i % 2]);
      engine_.set_label(d, "firmware", i < 3 ? "1.0" : "2.0");
      core::Event e;
      e.kind = i == 5 ? core::EventKind::Disconnected : core::EventKind::Connected;
      e.device = d;
      e.source = core::Source::Status;
      e.reason = core::DisconnectReason::LastWill;
      e.at = core::mono_ms(kNowMs - 600'000);
      engine_.on_event(e);
    }
    step(kNowMs);
  }
  api::Result<api::DevicePage> devices(const api::DeviceQuery& q) override {
    return queries_.devices(engine_, &policy_, q);
  }
  api::Result<api::DeviceDetail> device(std::string_view id) override {
    return queries_.device(engine_, &policy_, id);
  }
  api::Result<api::FleetSummary> fleet() override {
    return queries_.fleet(engine_, core::mono_ms(kNowMs), true, &policy_);
  }
  api::Result<std::vector<api::FleetSample>> fleet_history() override {
    return queries_.fleet_history();
  }
  api::Result<std::vector<api::IncidentSummary>> incidents() override {
    return queries_.incidents(&policy_);
  }
  api::Result<api::IncidentDetail> incident(std::uint32_t id) override {
    return queries_.incident(engine_, &policy_, id);
  }
  api::Result<std::vector<api::FiringAlertView>> alerts() override {
    return queries_.alerts(engine_, &policy_);
  }
  api::Result<std::vector<api::SilenceView>> silences() override {
    return queries_.silences(&policy_);
  }
  api::Result<api::SilenceView> add_silence(const api::NewSilence& s) override {
    return queries_.add_silence(&policy_, s, core::mono_ms(kNowMs));
  }
  api::Result<bool> remove_silence(std::uint64_t id) override {
    return queries_.remove_silence(&policy_, id, core::mono_ms(kNowMs));
  }
  // Silences added by one input must not leak into the next: the same bytes, the same run.
  void reset_silences() {
    for (const auto& s : policy_.silences()) policy_.remove_silence(s.id, core::mono_ms(kNowMs));
  }

 private:
  void step(std::int64_t now) {
    engine_.tick(core::mono_ms(now));
    engine_.flush();
    std::vector<core::Transition> ts;
    engine_.drain(ts);
    queries_.on_batch(engine_, ts, core::mono_ms(now), &policy_);
  }
  core::Engine engine_;
  core::AlertPolicy policy_;
  server::ApiQueries queries_;
};

struct World {
  DirectBackend backend;
  InProcessServer server;
  World() {
    api::ApiOptions options;
    options.token = kToken;
    options.counters = std::make_shared<api::ApiCounters>();
    options.log = [](std::string_view, std::string_view) {};
    api::register_api(server, backend, std::move(options));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World* world = new World();  // lives for the process, like presenced's server
  presence::fuzz::Input in(data, size);
  const std::uint8_t selector = in.byte();
  const int method = selector & 7;
  std::string request;
  std::string target;
  if (method == 7) {
    request = in.rest();
  } else {
    static const char* kMethods[] = {"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"};
    target = in.field();
    const std::string_view body = in.rest();
    request = std::string(kMethods[method]) + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if ((selector & 8) != 0) request += std::string("Authorization: Bearer ") + kToken + "\r\n";
    if (!body.empty()) {
      request += "Content-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n";
    }
    request += "\r\n";
    request += body;
  }
  const std::string response = world->server.handle(request);
  world->backend.reset_silences();

  if (method == 7 || response.empty()) return 0;  // raw bytes may not even be a request
  // A well-formed request gets a whole response; a /v1 one gets a JSON body.
  if (response.rfind("HTTP/1.1 ", 0) != 0) std::abort();
  const auto head_end = response.find("\r\n\r\n");
  if (head_end == std::string::npos) std::abort();
  if (target.rfind("/v1/", 0) == 0 && method != 5 /* HEAD */ && method != 6 /* OPTIONS */) {
    const std::string body = response.substr(head_end + 4);
    if (!body.empty() && !nlohmann::json::accept(body)) std::abort();
  }
  return 0;
}
