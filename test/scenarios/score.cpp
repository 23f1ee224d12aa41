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

// A cohort page's member that does not carry the cohort's label (then it is scored as usual).
bool wrong_cohort_member(const Truth& t, const std::string& device, const std::string& cohort) {
  const auto eq = cohort.find('=');
  const auto l = t.labels.find(device);
  if (eq == std::string::npos || l == t.labels.end()) return true;
  const auto v = l->second.find(cohort.substr(0, eq));
  return v == l->second.end() || v->second != cohort.substr(eq + 1);
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
      auto& l = t.labels[j.value("device", "")];
      for (const char* k : {"firmware", "site", "model"})
        if (j.contains(k) && j[k].is_string()) l[k] = j[k].get<std::string>();
    } else if (ev == "connect") {
      t.connects[j.value("device", "")].push_back(at);
      const auto it = open.find(j.value("device", ""));
      if (it != open.end()) {
        t.failures[it->second].end_ms = at;
        open.erase(it);
      }
    } else if (ev == "disconnect") {
      const std::string cause = j.value("cause", "");
      ++t.disconnect_causes[cause];
      const std::string d = j.value("device", "");
      t.disconnects.push_back({at, d, cause});
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
      t.actions.push_back({at, a});
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
  return score(truth, pages, min_outage_ms, slack_ms, routing_key, Expectations{});
}

namespace {

// A timeline action that disturbs devices server-side (not a death of one device).
bool server_side(const std::string& a) {
  return a == "drop" || a == "flap" || a == "signal" || a == "restart" || a == "exec" || a == "disconnect";
}

// A `drop` action healed when every device it disconnected (cause drop, within 1 s of it) was
// connected again within offline_grace.
bool drop_healed(const Truth& t, std::int64_t at, std::int64_t grace) {
  std::size_t n = 0;
  for (const auto& d : t.disconnects) {
    if (d.cause != "drop" || d.t < at || d.t > at + 1000) continue;
    ++n;
    bool back = false;
    const auto c = t.connects.find(d.device);
    if (c != t.connects.end())
      for (std::int64_t ct : c->second)
        if (ct >= d.t && ct <= d.t + grace) back = true;
    if (!back) return false;
  }
  return n > 0;
}

}  // namespace

ModeScore score(const Truth& truth, const std::vector<Page>& pages, std::int64_t min_outage_ms,
                std::int64_t slack_ms, const std::string& routing_key, const Expectations& ex) {
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
  std::vector<std::string> paged_scopes;  // scopes of (non-healed) incident pages
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
      const auto ids = split_ids(detail(p.body, "devices"));
      const std::string cohort = detail(p.body, "cohort");
      bool expected_cohort = false;
      if (ex.check_cohorts) {
        // A cohort page must name an expected cohort that every member really has; a group
        // without a cohort must not hide one ("5 unrelated devices" that were a firmware).
        const auto eq = cohort.find('=');
        expected_cohort = !cohort.empty() &&
                          std::find(ex.cohorts.begin(), ex.cohorts.end(), cohort) != ex.cohorts.end();
        bool wrong = !cohort.empty() && !expected_cohort;
        if (!cohort.empty() && eq != std::string::npos)
          for (const auto& d : ids) {
            const auto l = truth.labels.find(d);
            if (l == truth.labels.end()) continue;
            const auto v = l->second.find(cohort.substr(0, eq));
            if (v == l->second.end() || v->second != cohort.substr(eq + 1)) wrong = true;
          }
        // A group named by its cause ("still down after the blip in …") hides nothing.
        if (cohort.empty() && detail(p.body, "after_incident").empty())
          for (const auto& c : ex.cohorts) {
            const auto eq2 = c.find('=');
            std::size_t n = 0;
            for (const auto& d : ids) {
              const auto l = truth.labels.find(d);
              if (l == truth.labels.end() || eq2 == std::string::npos) continue;
              const auto v = l->second.find(c.substr(0, eq2));
              n += v != l->second.end() && v->second == c.substr(eq2 + 1);
            }
            if (n >= ex.cohort_min) wrong = true;
          }
        if (wrong) {
          ++s.cohort_mislabels;
          note(s.cohort_examples, payload_str(p.body, "summary").substr(0, 160));
        } else if (expected_cohort) {
          ++s.cohort_pages;
        }
      }
      for (const auto& d : ids)
        if (!foreign(d) && !cover(d, p.t_ms) && !(expected_cohort && !wrong_cohort_member(truth, d, cohort))) {
          ++s.false_device_pages;
          note(s.false_devices, d);
        }
    } else if (cls == "fleet_incident" || cls == "reconnect_storm") {
      const std::string key = p.body.value("dedup_key", "");
      if (!incident_keys.insert(key).second) continue;
      // The newest server-side action before the page is the event it describes.
      const Truth::Action* cause = nullptr;
      for (const auto& a : truth.actions)
        if (a.t <= p.t_ms && server_side(a.action)) cause = &a;
      if (cls == "fleet_incident" && cause != nullptr && cause->action == "drop" && ex.offline_grace_ms > 0 &&
          drop_healed(truth, cause->t, ex.offline_grace_ms)) {
        ++s.false_incident_pages;
        note(s.scope_examples, "healed: " + payload_str(p.body, "summary").substr(0, 160));
        continue;
      }
      const std::string scope = payload_str(p.body, "component");
      paged_scopes.push_back(scope);
      // An incident scoped to an expected cohort names it as well as a cohort group page does.
      if (ex.check_cohorts && std::find(ex.cohorts.begin(), ex.cohorts.end(), scope) != ex.cohorts.end())
        ++s.cohort_pages;
      if (ex.check_scopes &&
          std::find(ex.incident_scopes.begin(), ex.incident_scopes.end(), scope) == ex.incident_scopes.end()) {
        ++s.scope_errors;
        note(s.scope_examples, scope + ": " + payload_str(p.body, "summary").substr(0, 160));
      }
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
  // The latency bound (issue 11): every death that must be paged and is not part of an injected
  // server-side event (it started more than burst_ms after the last one) is paged within
  // bound_ms. Deaths inside a burst are indistinguishable from the event: its incident and
  // straggler alert cover them.
  if (ex.bound_ms > 0) {
    s.latency_bound_s = static_cast<double>(ex.bound_ms) / 1000.0;
    std::vector<double> b;
    for (std::size_t i = 0; i < truth.failures.size(); ++i) {
      const auto& f = truth.failures[i];
      if (f.cause.rfind("die:", 0) != 0) continue;
      const std::int64_t end = f.end_ms ? *f.end_ms : truth.end_ms;
      if (end - f.start_ms < min_outage_ms) continue;
      bool in_burst = false;
      // Inside an incident page's scope only: a death in another site is independent of a site
      // incident whenever it happens. (A flapping cohort's drop incident holds the deaths of its
      // own firmware during its burst like any other.)
      bool in_scope = false;
      const auto lab = truth.labels.find(f.device);
      for (const auto& sc : paged_scopes) {
        const auto eq = sc.find('=');
        if (sc == "fleet") in_scope = true;
        else if (eq != std::string::npos && lab != truth.labels.end()) {
          const auto v = lab->second.find(sc.substr(0, eq));
          if (v != lab->second.end() && v->second == sc.substr(eq + 1)) in_scope = true;
        }
      }
      // The burst reaches back as far as forward: a death up to burst_ms before the event is
      // counted by the fleet monitor's drop window like the event's own drops (scenario
      // bridge-drop: two deaths 3 s before a 100 % drop are held by its incident and named by
      // its straggler alert). Found when the bound was first asserted on that scenario.
      for (const auto& a : truth.actions)
        if (in_scope && server_side(a.action) && a.t - ex.burst_ms < f.start_ms &&
            f.start_ms < a.t + ex.burst_ms)
          in_burst = true;
      if (in_burst) continue;
      ++s.bounded;
      if (first_page[i]) b.push_back(static_cast<double>(*first_page[i] - f.start_ms) / 1000.0);
      if (!first_page[i] || *first_page[i] - f.start_ms > ex.bound_ms) {
        ++s.over_bound;
        note(s.over_bound_examples,
             f.device + (first_page[i] ? " " + std::to_string((*first_page[i] - f.start_ms) / 1000.0).substr(0, 5) + " s"
                                       : std::string(" never")));
      }
    }
    if (!b.empty()) {
      std::sort(b.begin(), b.end());
      s.bounded_p50_s = percentile(b, 0.5);
      s.bounded_p99_s = percentile(b, 0.99);
    }
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
  j["false_incident_pages"] = s.false_incident_pages;
  j["scope_errors"] = s.scope_errors;
  if (!s.scope_examples.empty()) j["scope_examples"] = s.scope_examples;
  j["cohort_pages"] = s.cohort_pages;
  j["cohort_mislabels"] = s.cohort_mislabels;
  if (!s.cohort_examples.empty()) j["cohort_examples"] = s.cohort_examples;
  j["latency_bound_s"] = opt(s.latency_bound_s);
  j["bounded_failures"] = s.bounded;
  j["over_bound"] = s.over_bound;
  j["bounded_p50_s"] = opt(s.bounded_p50_s);
  j["bounded_p99_s"] = opt(s.bounded_p99_s);
  if (!s.over_bound_examples.empty()) j["over_bound_examples"] = s.over_bound_examples;
  if (!s.missed_devices.empty()) j["missed_examples"] = s.missed_devices;
  if (!s.false_devices.empty()) j["false_examples"] = s.false_devices;
  return j;
}

namespace {

// dev-000042 -> 41 (presence-sim's index with the default first_id 1); -1 when there is no number.
long long device_index(const std::string& id) {
  std::size_t p = id.size();
  while (p > 0 && id[p - 1] >= '0' && id[p - 1] <= '9') --p;
  if (p == id.size() || id.size() - p > 18) return -1;
  return std::stoll(id.substr(p)) - 1;
}

void finish(RecoveryPart& part, std::vector<double>& back_s) {
  std::sort(back_s.begin(), back_s.end());
  part.back = back_s.size();
  if (part.lost == 0) return;
  const auto need99 = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(part.lost)));
  if (back_s.size() >= need99 && need99 > 0) part.t99_s = back_s[need99 - 1];
  if (back_s.size() == part.lost) part.t100_s = back_s.back();
}

}  // namespace

Recovery recovery(const std::string& truth_path, int brokers, std::int64_t window_ms) {
  std::ifstream in(truth_path);
  if (!in) throw std::runtime_error("cannot read " + truth_path);
  if (brokers < 1) brokers = 1;
  std::vector<json> lines;
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) lines.push_back(std::move(j));
  }
  // Workers write whole lines but not in global time order.
  std::stable_sort(lines.begin(), lines.end(), [](const json& a, const json& b) { return get_t(a) < get_t(b); });
  Recovery r;
  r.by_broker.resize(static_cast<std::size_t>(brokers));
  for (const auto& j : lines) {
    const std::string ev = j.value("event", "");
    if (ev == "action" && r.storm_action.empty()) {
      const std::string a = j.value("action", "");
      if (a == "drop" || a == "signal" || a == "restart" || a == "exec") {
        r.storm_action = a;
        r.storm_ms = get_t(j);
      }
    } else if (ev == "summary") {
      r.connect_attempts += j.value("connect_attempts", std::uint64_t{0});
      r.connects += j.value("connects", std::uint64_t{0});
      r.connect_failures += j.value("connect_failures", std::uint64_t{0});
      r.connack_refused += j.value("connack_refused", std::uint64_t{0});
    }
  }
  if (r.storm_action.empty()) return r;
  std::map<std::string, bool> online;          // before the storm
  std::map<std::string, std::int64_t> lost_at;  // lost in the storm, not back yet
  std::vector<double> back_all;
  std::vector<std::vector<double>> back_by(r.by_broker.size());
  std::map<std::int64_t, std::size_t> buckets_all;
  std::vector<std::map<std::int64_t, std::size_t>> buckets_by(r.by_broker.size());
  auto broker_of = [&](const std::string& id) {
    const long long i = device_index(id);
    return i < 0 ? std::size_t{0} : static_cast<std::size_t>(i % brokers);
  };
  for (const auto& j : lines) {
    const std::string ev = j.value("event", "");
    const std::string dev = j.value("device", "");
    const std::int64_t t = get_t(j);
    if (dev.empty()) continue;
    if (t < r.storm_ms) {
      if (ev == "connect") online[dev] = true;
      else if (ev == "disconnect" || ev == "die") online[dev] = false;
      continue;
    }
    const std::size_t b = broker_of(dev);
    if (ev == "disconnect") {
      const auto it = online.find(dev);
      if (it != online.end() && it->second && t <= r.storm_ms + window_ms && !lost_at.count(dev)) {
        it->second = false;
        lost_at[dev] = t;
        ++r.all.lost;
        ++r.by_broker[b].lost;
      }
    } else if (ev == "connect") {
      const std::int64_t bucket = (t - r.storm_ms) / 1000;
      ++buckets_all[bucket];
      ++buckets_by[b][bucket];
      const auto it = lost_at.find(dev);
      if (it != lost_at.end()) {
        const double s = static_cast<double>(t - r.storm_ms) / 1000.0;
        back_all.push_back(s);
        back_by[b].push_back(s);
        lost_at.erase(it);
        online.erase(dev);  // counted once
      }
    }
  }
  finish(r.all, back_all);
  for (std::size_t b = 0; b < r.by_broker.size(); ++b) finish(r.by_broker[b], back_by[b]);
  for (const auto& [k, n] : buckets_all) r.all.peak_connects_per_s = std::max(r.all.peak_connects_per_s, double(n));
  for (std::size_t b = 0; b < r.by_broker.size(); ++b)
    for (const auto& [k, n] : buckets_by[b])
      r.by_broker[b].peak_connects_per_s = std::max(r.by_broker[b].peak_connects_per_s, double(n));
  return r;
}

BrokerCounters read_heartbeats(const std::string& path) {
  std::ifstream in(path);
  BrokerCounters c;
  if (!in) return c;
  std::map<std::string, json> last;  // boot -> last heartbeat
  std::vector<std::string> order;
  std::string line;
  while (std::getline(in, line)) {
    const auto sp = line.find(' ');
    if (sp == std::string::npos) continue;
    json j = json::parse(line.substr(sp + 1), nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("connects")) continue;
    ++c.heartbeats;
    const std::string boot = j.value("boot", "");
    const auto it = last.find(boot);
    if (it == last.end()) {
      order.push_back(boot);
    } else {
      const double dt = static_cast<double>(j.value("ts", std::int64_t{0}) - it->second.value("ts", std::int64_t{0}));
      const double dn = static_cast<double>(j.value("connects", std::uint64_t{0})) -
                        static_cast<double>(it->second.value("connects", std::uint64_t{0}));
      if (dt > 0 && dn >= 0) c.peak_connects_per_s = std::max(c.peak_connects_per_s, dn * 1000.0 / dt);
    }
    c.max_clients = std::max(c.max_clients, j.value("clients", std::uint64_t{0}));
    last[boot] = std::move(j);
  }
  c.boots = order.size();
  for (const auto& [boot, j] : last) {
    c.connects += j.value("connects", std::uint64_t{0});
    c.disconnects += j.value("disconnects", std::uint64_t{0});
    c.refused_rate_limited += j.value("refused_rate_limited", std::uint64_t{0});
    c.refused_flap_banned += j.value("refused_flap_banned", std::uint64_t{0});
    c.auth_refused += j.value("auth_refused", std::uint64_t{0});
  }
  return c;
}

namespace {
json part_json(const RecoveryPart& p) {
  auto opt = [](const std::optional<double>& v) { return v ? json(std::round(*v * 100) / 100) : json(nullptr); };
  return {{"lost", p.lost}, {"back", p.back}, {"t99_s", opt(p.t99_s)}, {"t100_s", opt(p.t100_s)},
          {"peak_connects_per_s", p.peak_connects_per_s}};
}
}  // namespace

json to_json(const Recovery& r) {
  json j = part_json(r.all);
  j["storm_action"] = r.storm_action;
  j["storm_ms"] = r.storm_ms;
  j["by_broker"] = json::array();
  for (const auto& p : r.by_broker) j["by_broker"].push_back(part_json(p));
  j["connect_attempts"] = r.connect_attempts;
  j["connects"] = r.connects;
  j["connect_failures"] = r.connect_failures;
  j["connack_refused"] = r.connack_refused;
  return j;
}

json to_json(const BrokerCounters& c) {
  return {{"heartbeats", c.heartbeats},
          {"boots", c.boots},
          {"connects", c.connects},
          {"disconnects", c.disconnects},
          {"refused_rate_limited", c.refused_rate_limited},
          {"refused_flap_banned", c.refused_flap_banned},
          {"auth_refused", c.auth_refused},
          {"max_clients", c.max_clients},
          {"peak_connects_per_s", std::round(c.peak_connects_per_s)}};
}

}  // namespace presence::scenario
