#include "presence/alert/alertmanager.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "presence/alert/dashboard_link.h"
#include "presence/alert/json_text.h"
#include "presence/alert/payload.h"
#include "presence/store/file_io.h"

namespace presence::alert {
namespace {

using json = nlohmann::json;
using Action = core::AlertIntent::Action;
using Type = core::AlertIntent::Type;

bool is_device(Type t) { return t == Type::DeviceOffline || t == Type::DeviceFlapping; }

// Up to this many alerts per POST: a storm's triggers go in a few requests, not hundreds.
constexpr std::size_t kMaxBatch = 64;

json to_json(const AmAlert& a) {
  json j;
  j["labels"] = a.labels;
  if (!a.annotations.empty()) j["annotations"] = a.annotations;
  if (a.starts_ms != 0) j["startsAt"] = iso8601_utc(a.starts_ms);
  if (a.ends_ms != 0) j["endsAt"] = iso8601_utc(a.ends_ms);
  if (!a.generator_url.empty()) j["generatorURL"] = a.generator_url;
  return j;
}

// State file: {"v":1,"alerts":{"<dedup_key>":{"labels":..,"annotations":..,"starts_ms":..,
// "generatorURL":..}}}
std::string encode_state(const std::map<std::string, AmAlert>& active) {
  json alerts = json::object();
  for (const auto& [key, a] : active) {
    json j;
    j["labels"] = a.labels;
    j["annotations"] = a.annotations;
    j["starts_ms"] = a.starts_ms;
    j["generatorURL"] = a.generator_url;
    alerts[key] = std::move(j);
  }
  return json_text(json{{"v", 1}, {"alerts", std::move(alerts)}});
}

bool decode_state(const std::string& text, std::map<std::string, AmAlert>& out, std::string& error) {
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    error = "not JSON";
    return false;
  }
  if (j.value("v", 0) != 1 || !j.contains("alerts") || !j["alerts"].is_object()) {
    error = "not a version 1 state file";
    return false;
  }
  try {
    for (const auto& [key, a] : j["alerts"].items()) {
      AmAlert alert;
      alert.labels = a.at("labels").get<std::map<std::string, std::string>>();
      alert.annotations = a.at("annotations").get<std::map<std::string, std::string>>();
      alert.starts_ms = a.at("starts_ms").get<std::int64_t>();
      alert.generator_url = a.at("generatorURL").get<std::string>();
      out[key] = std::move(alert);
    }
  } catch (const json::exception& e) {
    error = e.what();
    out.clear();
    return false;
  }
  return true;
}

class AlertmanagerSink final : public Sink {
 public:
  explicit AlertmanagerSink(AlertmanagerConfig c)
      : c_(std::move(c)), log_(common::or_stderr(c_.log)) {
    load();
    refresher_ = std::thread([this] { run_refresher(); });
  }
  ~AlertmanagerSink() override {
    {
      std::lock_guard lock(stop_mu_);
      stopping_ = true;
    }
    stop_cv_.notify_all();
    refresher_.join();
  }

  const SinkConfig& config() const override { return c_.sink; }
  std::size_t batch_size(std::size_t queued) const override {
    return std::clamp<std::size_t>(queued, 1, kMaxBatch);
  }

  HttpRequest build(const std::vector<OutboxEntry>& batch) const override {
    std::vector<AmAlert> alerts;
    bool changed = false;
    std::lock_guard lock(mu_);
    for (const auto& e : batch) {
      AmAlert a = alertmanager_alert(e, c_.dashboard_url, c_.notify_for);
      const auto& key = e.intent.dedup_key;
      if (e.intent.action == Action::Trigger) {
        // An update of a firing alert keeps its first start (Alertmanager keeps the earliest).
        auto it = active_.find(key);
        if (it != active_.end()) a.starts_ms = std::min(a.starts_ms, it->second.starts_ms);
        active_[key] = a;
        changed = true;
      } else if (e.intent.action == Action::Resolve) {
        auto it = active_.find(key);
        if (it != active_.end()) {
          // The resolve must carry the trigger's labels exactly, or it ends nothing.
          const std::int64_t ends = a.ends_ms;
          a = it->second;
          a.ends_ms = std::max(ends, a.starts_ms);
          active_.erase(it);
          changed = true;
        }
      }
      alerts.push_back(std::move(a));
    }
    if (changed) save_locked();
    return {c_.sink.url, alertmanager_body(alerts), {"Content-Type: application/json"}};
  }

  // Alertmanager answers 400 for an alert it rejects (bad label...) and 5xx when it cannot take
  // it; the default mapping (docs/alerts.md) fits.

 private:
  void load() {
    if (c_.state_path.empty()) return;
    auto read = store::read_file(c_.state_path);
    if (read.ok() && !read.value) return;  // no state file yet
    std::string error = read.error;
    if (!read.ok() || !decode_state(*read.value, active_, error)) {
      // A damaged state file must not stop alerting: start with nothing firing, say so once.
      log_("alerts: sink '" + c_.sink.name + "': state " + c_.state_path +
           " unreadable (" + error + "); firing alerts are re-sent from the next trigger on");
      active_.clear();
      return;
    }
    if (!active_.empty())
      log_("alerts: sink '" + c_.sink.name + "': " + std::to_string(active_.size()) +
           " firing alert(s) restored; re-sending them to Alertmanager");
  }

  void save_locked() const {
    if (c_.state_path.empty()) return;
    if (auto written = store::write_file_atomic(c_.state_path, encode_state(active_));
        !written.ok() && save_log_.allow())
      log_("alerts: sink '" + c_.sink.name + "': cannot write " + c_.state_path + ": " +
           written.error);
  }

  // Re-sends every firing alert now (at start, so a restart does not let them lapse) and then
  // every resend_interval. Holds mu_ across the request: build() of a resolve waits for it, so a
  // re-send can never land after the resolve of its alert and fire it again.
  void run_refresher() {
    HttpClient http;
    const HttpTimeouts timeouts{c_.sink.connect_timeout, c_.sink.timeout};
    auto next = std::chrono::steady_clock::now();
    for (;;) {
      {
        std::unique_lock lock(stop_mu_);
        if (stop_cv_.wait_until(lock, next, [&] { return stopping_.load(); })) return;
      }
      next = std::chrono::steady_clock::now() + c_.resend_interval;
      std::lock_guard lock(mu_);
      if (active_.empty()) continue;
      std::vector<AmAlert> all;
      for (const auto& [key, a] : active_) all.push_back(a);
      for (std::size_t at = 0; at < all.size(); at += kMaxBatch) {
        std::vector<AmAlert> part(all.begin() + static_cast<std::ptrdiff_t>(at),
                                  all.begin() + static_cast<std::ptrdiff_t>(
                                                    std::min(all.size(), at + kMaxBatch)));
        HttpRequest req{c_.sink.url, alertmanager_body(part), {"Content-Type: application/json"}};
        const HttpResponse r = http.post(req, timeouts, &stopping_);
        if (r.aborted) return;
        if ((r.status < 200 || r.status >= 300) && resend_log_.allow())
          log_("alerts: sink '" + c_.sink.name + "': re-send of " + std::to_string(part.size()) +
               " firing alert(s) failed (" +
               (r.status == 0 ? r.error : "HTTP " + std::to_string(r.status)) +
               "); next try in " + std::to_string(c_.resend_interval.count()) + " ms");
      }
    }
  }

  AlertmanagerConfig c_;
  common::LogFn log_;
  mutable std::mutex mu_;
  mutable std::map<std::string, AmAlert> active_;  // by dedup_key; guarded by mu_
  mutable common::LogLimiter save_log_;
  common::LogLimiter resend_log_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  std::atomic<bool> stopping_{false};
  std::thread refresher_;
};

}  // namespace

std::string alertmanager_endpoint(std::string_view base) {
  std::string s(base);
  constexpr std::string_view kPath = "/api/v2/alerts";
  if (s.size() >= kPath.size() && s.compare(s.size() - kPath.size(), kPath.size(), kPath) == 0)
    return s;
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s + std::string(kPath);
}

std::string alertmanager_label_name(std::string_view key) {
  std::string out;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (!out.empty() && c >= '0' && c <= '9');
    out.push_back(ok ? c : '_');
  }
  return out.empty() ? "_" : out;
}

AmAlert alertmanager_alert(const OutboxEntry& entry, std::string_view dashboard_url,
                           Duration notify_for) {
  const auto& i = entry.intent;
  AmAlert a;
  // Segment labels first, so a device label called "severity" cannot replace ours.
  if (is_device(i.type)) {
    for (const auto& [k, v] : i.details) a.labels[alertmanager_label_name(k)] = v;
  }
  std::string scope = detail_of(i, "scope");
  if (scope.empty() && !is_device(i.type) && i.type != Type::DeviceGroup) scope = i.component;
  if (const auto eq = scope.find('='); eq != std::string::npos)
    a.labels[alertmanager_label_name(scope.substr(0, eq))] = scope.substr(eq + 1);
  const bool notify = i.action == Action::Notify;
  // Context gets its own alertname: a healed drop's note (cls fleet_incident) must not match an
  // inhibition or route written for real fleet incidents. The kind is in the "note" label.
  a.labels["alertname"] = notify ? "presenced_note" : wire_name(i.type);
  if (notify) a.labels["note"] = i.cls.empty() ? std::string(wire_name(i.type)) : i.cls;
  a.labels["severity"] = wire_name(notify ? core::Severity::Info : i.severity);
  a.labels["source"] = "presenced";
  if (!i.dedup_key.empty()) a.labels["dedup_key"] = i.dedup_key;
  if (is_device(i.type) && !i.component.empty()) a.labels["device"] = i.component;
  if (!scope.empty()) a.labels["scope"] = scope;
  if (!i.group.empty()) a.labels["route"] = i.group;

  if (!i.summary.empty()) a.annotations["summary"] = i.summary;
  std::string cohort;
  for (const auto& [k, v] : i.details)
    if (k.rfind("cohort_", 0) == 0) cohort += (cohort.empty() ? "" : "; ") + v;
  if (!cohort.empty()) a.annotations["cohort"] = cohort;
  for (const char* k : {"devices", "count", "population", "disruption", "incident"}) {
    std::string v = detail_of(i, k);
    if (!v.empty()) a.annotations[k] = std::move(v);
  }
  a.starts_ms = entry.wall_ms;
  if (i.action == Action::Resolve) a.ends_ms = entry.wall_ms;
  if (notify)
    a.ends_ms = entry.wall_ms + std::chrono::duration_cast<std::chrono::milliseconds>(notify_for).count();
  a.generator_url = dashboard_link(dashboard_url, i);
  return a;
}

std::string alertmanager_body(const std::vector<AmAlert>& alerts) {
  json arr = json::array();
  for (const auto& a : alerts) arr.push_back(to_json(a));
  return json_text(arr);
}

std::unique_ptr<Sink> make_alertmanager_sink(AlertmanagerConfig config) {
  return std::make_unique<AlertmanagerSink>(std::move(config));
}

}  // namespace presence::alert
