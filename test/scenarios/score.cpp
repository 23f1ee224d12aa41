#include "test/scenarios/score.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace presence::scenario {

using nlohmann::json;

namespace {

std::int64_t get_t(const json& j) { return j.value("t", std::int64_t{0}); }

std::vector<std::string> split_ids(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, ',')) {
    while (!cur.empty() && cur.front() == ' ') cur.erase(cur.begin());
    while (!cur.empty() && cur.back() == ' ') cur.pop_back();
    if (!cur.empty()) out.push_back(cur);
  }
  return out;
}

std::string detail(const json& body, const char* key) {
  const auto p = body.find("payload");
  if (p == body.end() || !p->is_object()) return {};
  const auto d = p->find("custom_details");
  if (d == p->end() || !d->is_object()) return {};
  const auto v = d->find(key);
  if (v == d->end()) return {};
  return v->is_string() ? v->get<std::string>() : v->dump();
}

std::string payload_str(const json& body, const char* key) {
  const auto p = body.find("payload");
  if (p == body.end() || !p->is_object()) return {};
  const auto v = p->find(key);
  return v != p->end() && v->is_string() ? v->get<std::string>() : std::string();
}

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double q) {
  const auto n = sorted.size();
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(n)));
  if (rank == 0) rank = 1;
  return sorted[std::min(rank, n) - 1];
}

}  // namespace

Truth read_truth(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  Truth t;
  std::set<std::string> devices;
  std::map<std::string, std::size_t> open;  // device -> index of its open failure
  std::int64_t last = 0;
  bool have_end = false;
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      t.errors.push_back(path + ":" + std::to_string(n) + ": not a JSON object");
      continue;
    }
    const std::string ev = j.value("event", "");
    const std::int64_t at = get_t(j);
    last = std::max(last, at);
    if (ev == "start") {
      if (t.start_ms == 0 || at < t.start_ms) t.start_ms = at;
    } else if (ev == "device") {
      devices.insert(j.value("device", ""));
    } else if (ev == "connect") {
      const auto it = open.find(j.value("device", ""));
      if (it != open.end()) {
        t.failures[it->second].end_ms = at;
        open.erase(it);
      }
    } else if (ev == "disconnect") {
      const std::string cause = j.value("cause", "");
      ++t.disconnect_causes[cause];
      const std::string d = j.value("device", "");
      // Lost a session and will never try again by itself: stuck (post-mortem 001). A clean
      // disconnect was the device's own choice.
      const auto r = j.find("reconnect_in_ms");
      if (r != j.end() && r->is_null() && cause != "clean" && !open.count(d)) {
        open[d] = t.failures.size();
        t.failures.push_back({d, at, std::nullopt, "stuck:" + cause});
      }
    } else if (ev == "die") {
      const std::string d = j.value("device", "");
      if (!open.count(d)) {
        open[d] = t.failures.size();
        t.failures.push_back({d, at, std::nullopt, "die:" + j.value("cause", std::string("?"))});
      }
    } else if (ev == "action") {
      const std::string a = j.value("action", "");
      if (a == "end" || a == "signal_stop") {
        t.end_ms = at;
        have_end = true;
      }
    }
  }
  if (!have_end) t.end_ms = last;
  t.devices = devices.size();
  t.device_ids = std::move(devices);
  return t;
}

std::vector<Page> read_pages(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<Page> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    out.push_back({j.value("t", std::int64_t{0}), j.value("body", json())});
  }
  return out;
}

std::string validate_pd(const json& body, const std::string& routing_key) {
  if (!body.is_object()) return "body is not a JSON object";
  if (body.value("routing_key", "") != routing_key) return "wrong routing_key";
  const std::string action = body.value("event_action", "");
  const std::string key = body.value("dedup_key", "");
  if (key.empty() || key.size() > 255) return "dedup_key empty or over 255 characters";
  if (action == "resolve") return {};
  if (action != "trigger") return "event_action '" + action + "'";
  const auto p = body.find("payload");
  if (p == body.end() || !p->is_object()) return "trigger without payload";
  const std::string summary = payload_str(body, "summary");
  if (summary.empty() || summary.size() > 1024 * 4) return "payload.summary empty or too long";
  if (payload_str(body, "source").empty()) return "payload.source empty";
  static const std::set<std::string> severities{"critical", "error", "warning", "info"};
  if (!severities.count(payload_str(body, "severity"))) return "payload.severity invalid";
  return {};
}

ModeScore score(const Truth& truth, const std::vector<Page>& pages, std::int64_t min_outage_ms,
                std::int64_t slack_ms, const std::string& routing_key) {
  ModeScore s;
  std::map<std::string, std::vector<std::size_t>> by_device;
  for (std::size_t i = 0; i < truth.failures.size(); ++i)
    by_device[truth.failures[i].device].push_back(i);
  std::vector<std::optional<std::int64_t>> first_page(truth.failures.size());

  // Marks the failure of `device` covering time t; false when there is none.
  auto cover = [&](const std::string& device, std::int64_t t) {
    const auto it = by_device.find(device);
    if (it == by_device.end()) return false;
    bool hit = false;
    for (std::size_t i : it->second) {
      const auto& f = truth.failures[i];
      const std::int64_t end = f.end_ms ? *f.end_ms + slack_ms : INT64_MAX;
      if (f.start_ms <= t && t <= end) {
        if (!first_page[i]) first_page[i] = t;
        hit = true;
      }
    }
    return hit;
  };
  auto note = [](std::vector<std::string>& v, const std::string& d) {
    if (v.size() < 10) v.push_back(d);
  };
  auto foreign = [&](const std::string& d) {
    if (truth.device_ids.count(d)) return false;
    ++s.foreign_pages;
    if (std::find(s.foreign_ids.begin(), s.foreign_ids.end(), d) == s.foreign_ids.end()) note(s.foreign_ids, d);
    return true;
  };

  std::set<std::string> incident_keys;
  for (const auto& p : pages) {
    if (p.t_ms > truth.end_ms) continue;  // the sim's exit drops every session: not scored
    if (!validate_pd(p.body, routing_key).empty()) {
      ++s.invalid;
      continue;
    }
    if (p.body.value("event_action", "") == "resolve") {
      ++s.resolves;
      continue;
    }
    ++s.pages_total;
    std::string cls = payload_str(p.body, "class");
    if (cls.empty()) cls = detail(p.body, "alert_type");
    if (cls == "device_offline" || cls == "device_flapping") {
      ++s.device_pages;
      const std::string d = payload_str(p.body, "component");
      if (foreign(d)) continue;
      if (!cover(d, p.t_ms)) {
        ++s.false_device_pages;
        note(s.false_devices, d);
      }
    } else if (cls == "device_group") {
      ++s.device_pages;
      for (const auto& d : split_ids(detail(p.body, "devices")))
        if (!foreign(d) && !cover(d, p.t_ms)) {
          ++s.false_device_pages;
          note(s.false_devices, d);
        }
    } else if (cls == "fleet_incident" || cls == "reconnect_storm") {
      incident_keys.insert(p.body.value("dedup_key", ""));
    } else if (cls == "stragglers") {
      ++s.straggler_alerts;
      const auto ids = split_ids(detail(p.body, "devices"));
      for (const auto& d : ids) {
        if (foreign(d)) continue;
        ++s.straggler_devices;
        if (!cover(d, p.t_ms)) ++s.false_straggler_devices;
      }
      // details_max_devices caps the list; the rest cannot be attributed (counted, reported).
      try {
        const std::size_t count = std::stoul(detail(p.body, "count"));
        if (count > ids.size()) s.straggler_unlisted += count - ids.size();
      } catch (...) {
      }
    } else {
      ++s.other_pages;
    }
  }
  s.incident_pages = incident_keys.size();

  std::vector<double> lat;
  for (std::size_t i = 0; i < truth.failures.size(); ++i) {
    const auto& f = truth.failures[i];
    const std::int64_t end = f.end_ms ? *f.end_ms : truth.end_ms;
    if (end - f.start_ms < min_outage_ms) continue;  // too short to page, or too late in the run
    ++s.required;
    if (first_page[i]) {
      ++s.paged;
      lat.push_back(static_cast<double>(*first_page[i] - f.start_ms) / 1000.0);
    } else {
      ++s.missed;
      note(s.missed_devices, f.device + "(" + f.cause + ")");
    }
  }
  if (!lat.empty()) {
    std::sort(lat.begin(), lat.end());
    s.latency_p50_s = percentile(lat, 0.5);
    s.latency_p99_s = percentile(lat, 0.99);
    s.latency_max_s = lat.back();
  }
  return s;
}

json to_json(const ModeScore& s) {
  auto opt = [](const std::optional<double>& v) {
    return v ? json(std::round(*v * 100.0) / 100.0) : json(nullptr);
  };
  json j;
  j["pages"] = s.pages_total;
  j["resolves"] = s.resolves;
  j["invalid_requests"] = s.invalid;
  j["real_failures"] = s.required;
  j["real_failures_paged"] = s.paged;
  j["missed"] = s.missed;
  j["false_device_pages"] = s.false_device_pages;
  j["device_pages"] = s.device_pages;
  j["incident_pages"] = s.incident_pages;
  j["straggler_alerts"] = s.straggler_alerts;
  j["straggler_devices"] = s.straggler_devices;
  j["false_straggler_devices"] = s.false_straggler_devices;
  j["other_pages"] = s.other_pages;
  j["foreign_pages"] = s.foreign_pages;
  if (!s.foreign_ids.empty()) j["foreign_examples"] = s.foreign_ids;
  j["straggler_unlisted"] = s.straggler_unlisted;
  // Upper bound: missed devices that may be among a stragglers alert's unlisted ones
  // (details_max_devices caps the list; the API has the full list).
  j["paged_incl_unlisted"] = s.paged + std::min(s.missed, s.straggler_unlisted);
  j["latency_p50_s"] = opt(s.latency_p50_s);
  j["latency_p99_s"] = opt(s.latency_p99_s);
  j["latency_max_s"] = opt(s.latency_max_s);
  if (!s.missed_devices.empty()) j["missed_examples"] = s.missed_devices;
  if (!s.false_devices.empty()) j["false_examples"] = s.false_devices;
  return j;
}

}  // namespace presence::scenario
