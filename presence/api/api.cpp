#include "presence/api/api.h"
#include "presence/common/iso8601.h"
#include "presence/common/wall_time.h"
#include "presence/core/words.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <exception>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

#include "presence/api/dashboard_assets.h"

namespace presence::api {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Helpers

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  return host.size() >= 4 && host.substr(0, 4) == "127.";
}

namespace {

constexpr std::string_view kCursorPrefix = "c1_";

// Cursors are opaque to clients ("c1_" + base-36 index): the prefix versions the format so it
// can change without old cursors being misread.
constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";

}  // namespace

std::string encode_cursor(std::uint64_t index) {
  std::string digits;
  do {
    digits.push_back(kDigits[index % 36]);
    index /= 36;
  } while (index != 0);
  std::reverse(digits.begin(), digits.end());
  return std::string(kCursorPrefix) + digits;
}

std::optional<std::uint64_t> decode_cursor(std::string_view cursor) {
  if (cursor.size() <= kCursorPrefix.size() || cursor.size() > kCursorPrefix.size() + 13 ||
      cursor.substr(0, kCursorPrefix.size()) != kCursorPrefix)
    return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : cursor.substr(kCursorPrefix.size())) {
    const char* p = std::find(kDigits, kDigits + 36, c);
    if (p == kDigits + 36) return std::nullopt;
    v = v * 36 + static_cast<std::uint64_t>(p - kDigits);
  }
  if (v > 0xFFFFFFFFull) return std::nullopt;  // device indices are 32-bit
  return v;
}

std::string iso8601(WallTime t) { return common::iso8601_utc_ms(t); }

namespace {

bool parse_int(std::string_view s, int& out) {
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

// The one parser of user-given times (presence/common/iso8601.h), shared with the config file's
// alerts.silences: a silence that loads from the file is accepted here (issue 12).
std::optional<WallTime> parse_iso8601(std::string_view s) { return common::parse_iso8601(s); }

std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  // "90s", "15m", "2h", "1d", "500ms"; one number, one unit.
  std::size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0 || i > 9) return std::nullopt;
  std::int64_t n = 0;
  std::from_chars(s.data(), s.data() + i, n);
  const std::string_view unit = s.substr(i);
  std::int64_t ms = 0;
  if (unit == "ms")
    ms = 1;
  else if (unit == "s")
    ms = 1000;
  else if (unit == "m")
    ms = 60'000;
  else if (unit == "h")
    ms = 3'600'000;
  else if (unit == "d")
    ms = 86'400'000;
  else
    return std::nullopt;
  return std::chrono::milliseconds(n * ms);
}

std::string render_prometheus(const ApiCounters& c) {
  std::string out =
      "# HELP presence_api_requests_total Requests to /v1 endpoints.\n"
      "# TYPE presence_api_requests_total counter\n"
      "presence_api_requests_total " +
      std::to_string(c.requests.load()) +
      "\n"
      "# HELP presence_api_errors_total /v1 requests answered with an error, by error code.\n"
      "# TYPE presence_api_errors_total counter\n";
  for (std::size_t i = 0; i < ApiCounters::kCodes.size(); ++i)
    out += std::string("presence_api_errors_total{code=\"") + ApiCounters::kCodes[i] + "\"} " +
           std::to_string(c.errors[i].load()) + "\n";
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON

namespace {

json labels_json(const std::vector<LabelPair>& labels) {
  json j = json::object();
  for (const auto& [k, v] : labels) j[k] = v;
  return j;
}

json to_json(const DeviceSummary& d) {
  json j = {{"id", d.id}, {"state", d.state}, {"since", iso8601(d.since)}, {"reason", d.reason}};
  if (!d.disconnect_reason.empty()) j["disconnect_reason"] = d.disconnect_reason;
  if (!d.parent.empty()) j["parent"] = d.parent;
  j["labels"] = labels_json(d.labels);
  return j;
}

json hint_json(const std::vector<CohortHintView>& hints) {
  json hint = json::array();
  for (const auto& h : hints)
    hint.push_back({{"key", h.key},
                    {"value", h.value},
                    {"support", h.support},
                    {"share_in_incident", h.share_in_incident},
                    {"share_in_scope", h.share_in_scope},
                    {"lift", h.lift}});
  return hint;
}

json to_json(const IncidentSummary& i) {
  json hint = hint_json(i.hint);
  json j = {{"id", i.id},
            {"kind", i.kind},
            {"stage", i.stage},
            {"scope", i.scope_key.empty() ? json{{"key", nullptr}, {"value", nullptr}}
                                          : json{{"key", i.scope_key}, {"value", i.scope_value}}},
            {"opened_at", iso8601(i.opened_at)},
            {"resolved_at", i.resolved_at ? json(iso8601(*i.resolved_at)) : json(nullptr)},
            {"closed_at", i.closed_at ? json(iso8601(*i.closed_at)) : json(nullptr)},
            {"population", i.population},
            {"count", i.count},
            {"share", i.share},
            {"peak_down", i.peak_down},
            {"still_down", i.still_down},
            {"held", i.held},
            {"stragglers", i.stragglers},
            {"healed", i.healed},
            {"cohort_hint", std::move(hint)}};
  return j;
}

json to_json(const FiringAlertView& a) {
  return {{"dedup_key", a.dedup_key},
          {"type", a.type},
          {"kind", a.kind},
          {"severity", a.severity.empty() ? json(nullptr) : json(a.severity)},
          {"summary", a.summary},
          {"scope", a.scope},
          {"since", iso8601(a.since)},
          {"incident", a.incident ? json(a.incident) : json(nullptr)},
          {"cohort_hint", hint_json(a.hint)},
          {"device_count", a.device_count},
          {"devices", a.devices}};
}

json to_json(const SilenceView& s) {
  return {{"id", s.id},
          {"match", labels_json(s.match)},
          {"starts_at", iso8601(s.starts_at)},
          {"ends_at", iso8601(s.ends_at)},
          {"comment", s.comment}};
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  // Device ids and labels come from MQTT: invalid UTF-8 is replaced, never a throw (500).
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.http, {{"error", {{"code", e.code}, {"message", e.message}}}});
}

void count(const ApiOptions& opt, const httplib::Request& req, const httplib::Response& res) {
  if (!opt.counters && !opt.log) return;
  if (opt.counters) ++opt.counters->requests;
  if (res.status < 400) return;
  std::string code;
  const json j = json::parse(res.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object())
    code = j["error"].value("code", "");
  if (opt.counters) {
    for (std::size_t i = 0; i < ApiCounters::kCodes.size(); ++i)
      if (code == ApiCounters::kCodes[i]) ++opt.counters->errors[i];
  }
  if (opt.log && res.status >= 500)
    opt.log(code, "api: " + req.method + " " + req.path.substr(0, 200) + ": " +
                      std::to_string(res.status) + " " + res.body.substr(0, 300));
}

void send_error(httplib::Response& res, int status, std::string code, std::string message) {
  send_error(res, ApiError{status, std::move(code), std::move(message)});
}

}  // namespace

// Constant-time comparison: the token must not leak through response timing.
bool same_token(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

namespace {

// The state words are the core's (core/words.h): the API takes and gives the same words, plus
// "unreachable" (issue 15), the word shown for a down device behind a down parent.
bool valid_state(std::string_view s) {
  return core::state_from_word(s).has_value() || s == core::kUnreachableWord;
}

constexpr std::size_t kMaxIdBytes = 4096;
constexpr std::size_t kMaxBodyBytes = 64 * 1024;
constexpr std::size_t kMaxMatchers = 32;
constexpr std::size_t kMaxCommentBytes = 1024;

class Router {
 public:
  Router(ApiBackend& backend, ApiOptions options) : backend_(backend), opt_(std::move(options)) {}

  enum class Access { Read, Write };

  // Wraps a handler with the token check and a last-resort catch: a handler bug answers 500
  // JSON instead of taking the HTTP thread down.
  httplib::Server::Handler guard(
      Access access, std::function<void(const httplib::Request&, httplib::Response&)> fn) {
    return [this, access, fn = std::move(fn)](const httplib::Request& req, httplib::Response& res) {
      if (authorized(access, req, res)) {
        try {
          fn(req, res);
        } catch (const std::exception& e) {
          send_error(res, 500, "internal", std::string("internal error: ") + e.what());
        } catch (...) {
          send_error(res, 500, "internal", "internal error");
        }
      }
      count(opt_, req, res);
    };
  }

  bool authorized(Access access, const httplib::Request& req, httplib::Response& res) const {
    const bool needed = access == Access::Write || opt_.require_token_for_reads;
    if (!needed) return true;
    if (opt_.token.empty()) {
      send_error(res, 403, "forbidden",
                 "this endpoint needs a bearer token and none is configured (http.token)");
      return false;
    }
    const std::string auth = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (auth.size() <= kBearer.size() || auth.compare(0, kBearer.size(), kBearer) != 0) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"presenced\"");
      send_error(res, 401, "unauthorized", "missing bearer token (Authorization: Bearer ...)");
      return false;
    }
    if (!same_token(std::string_view(auth).substr(kBearer.size()), opt_.token)) {
      res.set_header("WWW-Authenticate", "Bearer realm=\"presenced\", error=\"invalid_token\"");
      send_error(res, 401, "unauthorized", "invalid bearer token");
      return false;
    }
    return true;
  }

  void devices(const httplib::Request& req, httplib::Response& res) {
    DeviceQuery q;
    q.limit = opt_.default_limit;
    for (const auto& [key, value] : req.params) {
      if (key == "state") {
        if (!valid_state(value))
          return send_error(res, 400, "bad_request",
                            "state: expected unknown, online, suspect, offline, flapping or unreachable");
        q.state = value;
      } else if (key == "limit") {
        int n = 0;
        if (!parse_int(value, n) || n < 1 || static_cast<std::size_t>(n) > opt_.max_limit)
          return send_error(res, 400, "bad_request",
                            "limit: expected 1.." + std::to_string(opt_.max_limit));
        q.limit = static_cast<std::size_t>(n);
      } else if (key == "cursor") {
        const auto c = decode_cursor(value);
        if (!c) return send_error(res, 400, "bad_request", "cursor: not a cursor from this API");
        q.cursor = *c;
      } else if (key == "id_prefix") {
        if (value.size() > kMaxIdBytes)
          return send_error(res, 400, "bad_request", "id_prefix: too long");
        q.id_prefix = value;
      } else if (key.rfind("label.", 0) == 0 && key.size() > 6) {
        if (q.labels.size() >= kMaxMatchers)
          return send_error(res, 400, "bad_request", "too many label filters");
        q.labels.emplace_back(key.substr(6), value);
      } else {
        return send_error(res, 400, "bad_request",
                          "unknown query parameter '" + key.substr(0, 64) +
                              "' (state, label.<key>, id_prefix, limit, cursor)");
      }
    }
    const auto r = backend_.devices(q);
    if (!r.ok()) return send_error(res, r.error);
    json list = json::array();
    for (const auto& d : r.value.devices) list.push_back(to_json(d));
    json body = {{"devices", std::move(list)}, {"total", r.value.total}};
    body["next_cursor"] = r.value.next ? json(encode_cursor(*r.value.next)) : json(nullptr);
    send_json(res, 200, body);
  }

  void device(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    if (id.empty() || id.size() > kMaxIdBytes)
      return send_error(res, 400, "bad_request",
                        "device id: 1.." + std::to_string(kMaxIdBytes) + " bytes");
    const auto r = backend_.device(id);
    if (!r.ok()) return send_error(res, r.error);
    const auto& d = r.value;
    json j = to_json(d.device);
    j["last_seen"] = iso8601(d.last_seen);
    j["heartbeat"] = {{"mean_ms", d.heartbeat_mean_ms}, {"timeout_ms", d.heartbeat_timeout_ms}};
    j["session"] = d.session;
    j["held_by_incident"] = d.held_by_incident ? json(d.held_by_incident) : json(nullptr);
    json tr = json::array();
    for (const auto& t : d.transitions) {
      json x = {{"at", iso8601(t.at)}, {"from", t.from}, {"to", t.to}, {"reason", t.reason}};
      if (!t.disconnect_reason.empty()) x["disconnect_reason"] = t.disconnect_reason;
      tr.push_back(std::move(x));
    }
    j["transitions"] = std::move(tr);
    send_json(res, 200, j);
  }

  void fleet(const httplib::Request&, httplib::Response& res) {
    const auto r = backend_.fleet();
    if (!r.ok()) return send_error(res, r.error);
    const auto& f = r.value;
    json counts = json::object();
    for (const auto& [s, n] : f.by_state) counts[s] = n;
    json segs = json::array();
    for (const auto& s : f.segments) {
      json c = json::object();
      for (const auto& [st, n] : s.by_state) c[st] = n;
      segs.push_back({{"key", s.key}, {"value", s.value}, {"devices", s.devices}, {"counts", c}});
    }
    send_json(res, 200,
              {{"at", iso8601(f.at)},
               {"devices", f.devices},
               {"counts", counts},
               {"broker_connected", f.broker_connected},
               {"blind", f.blind},
               {"restart_grace", f.restart_grace},
               {"segments", segs},
               {"segments_truncated", f.segments_truncated},
               {"segments_at", iso8601(f.segments_at)}});
  }

  void fleet_history(const httplib::Request&, httplib::Response& res) {
    const auto r = backend_.fleet_history();
    if (!r.ok()) return send_error(res, r.error);
    json samples = json::array();
    for (const auto& p : r.value) {
      json c = json::object();
      for (std::size_t i = 0; i < p.counts.size(); ++i) c[core::kStateWords[i]] = p.counts[i];
      samples.push_back({{"at", iso8601(p.at)}, {"counts", std::move(c)}});
    }
    send_json(res, 200, {{"samples", std::move(samples)}});
  }

  void incidents(const httplib::Request&, httplib::Response& res) {
    const auto r = backend_.incidents();
    if (!r.ok()) return send_error(res, r.error);
    json list = json::array();
    for (const auto& i : r.value) list.push_back(to_json(i));
    send_json(res, 200, {{"incidents", list}});
  }

  void incident(const httplib::Request& req, httplib::Response& res) {
    int id = 0;
    if (!parse_int(req.matches[1].str(), id) || id <= 0)
      return send_error(res, 400, "bad_request", "incident id: a positive integer");
    const auto r = backend_.incident(static_cast<std::uint32_t>(id));
    if (!r.ok()) return send_error(res, r.error);
    json j = to_json(r.value.incident);
    j["held_devices"] = r.value.held_devices;
    j["still_held_devices"] = r.value.still_held_devices;
    j["straggler_devices"] = r.value.straggler_devices;
    j["alerts"] = r.value.alerts;
    send_json(res, 200, j);
  }

  // The pages sent and not resolved (issue 17): the dashboard's "Firing now" panel.
  void alerts(const httplib::Request&, httplib::Response& res) {
    const auto r = backend_.alerts();
    if (!r.ok()) return send_error(res, r.error);
    json list = json::array();
    for (const auto& a : r.value) list.push_back(to_json(a));
    send_json(res, 200, {{"alerts", std::move(list)}});
  }

  // The device-hygiene report (issue 14; docs/doctor.md): misconfigured devices, each with
  // what is wrong and how to fix it.
  void doctor(const httplib::Request& req, httplib::Response& res) {
    std::size_t limit = opt_.default_limit;
    for (const auto& [key, value] : req.params) {
      if (key == "limit") {
        int n = 0;
        if (!parse_int(value, n) || n < 1 || static_cast<std::size_t>(n) > opt_.max_limit)
          return send_error(res, 400, "bad_request",
                            "limit: expected 1.." + std::to_string(opt_.max_limit));
        limit = static_cast<std::size_t>(n);
      } else {
        return send_error(res, 400, "bad_request", "unknown parameter '" + key.substr(0, 50) +
                                                       "' (expected limit)");
      }
    }
    const auto r = backend_.doctor(limit);
    if (!r.ok()) return send_error(res, r.error);
    json counts = json::object();
    for (const auto& [check, n] : r.value.counts) counts[check] = n;
    json findings = json::array();
    for (const auto& f : r.value.findings)
      findings.push_back(
          {{"id", f.id}, {"check", f.check}, {"problem", f.problem}, {"fix", f.fix}});
    send_json(res, 200,
              {{"v", 1},
               {"devices_checked", r.value.devices_checked},
               {"devices_not_tracked", r.value.devices_dropped},
               {"counts", std::move(counts)},
               {"findings", std::move(findings)},
               {"truncated", r.value.truncated}});
  }

  void silences(const httplib::Request&, httplib::Response& res) {
    const auto r = backend_.silences();
    if (!r.ok()) return send_error(res, r.error);
    json list = json::array();
    for (const auto& s : r.value) list.push_back(to_json(s));
    send_json(res, 200, {{"silences", list}});
  }

  // {"match":{"site":"a","alert":"device_offline"}, "starts_at":ISO8601?,
  //  "ends_at":ISO8601 | "duration":"2h", "comment":"..."}
  void add_silence(const httplib::Request& req, httplib::Response& res) {
    if (req.body.size() > kMaxBodyBytes)
      return send_error(res, 413, "too_large", "body larger than 64 KiB");
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object())
      return send_error(res, 400, "bad_request", "body: expected a JSON object");
    NewSilence s;
    if (body.contains("match")) {
      const json& m = body["match"];
      if (!m.is_object()) return send_error(res, 400, "bad_request", "match: expected an object");
      if (m.size() > kMaxMatchers) return send_error(res, 400, "bad_request", "match: too many");
      for (const auto& [k, v] : m.items()) {
        if (k.empty() || !v.is_string() || v.get_ref<const std::string&>().empty())
          return send_error(res, 400, "bad_request",
                            "match: keys and values must be non-empty strings");
        s.match.emplace_back(k, v.get<std::string>());
      }
    }
    auto time_field = [&](const char* name, std::optional<WallTime>& out) -> bool {
      if (!body.contains(name)) return true;
      const json& v = body[name];
      if (!v.is_string()) return false;
      out = parse_iso8601(v.get_ref<const std::string&>());
      return out.has_value();
    };
    std::optional<WallTime> starts, ends;
    if (!time_field("starts_at", starts))
      return send_error(res, 400, "bad_request", "starts_at: expected ISO 8601 (…Z or ±hh:mm)");
    if (!time_field("ends_at", ends))
      return send_error(res, 400, "bad_request", "ends_at: expected ISO 8601 (…Z or ±hh:mm)");
    if (body.contains("duration")) {
      if (ends) return send_error(res, 400, "bad_request", "give ends_at or duration, not both");
      const json& v = body["duration"];
      const auto d = v.is_string() ? parse_duration(v.get_ref<const std::string&>()) : std::nullopt;
      if (!d || d->count() <= 0)
        return send_error(res, 400, "bad_request",
                          "duration: expected e.g. \"90s\", \"30m\", \"2h\"");
      if (*d > std::chrono::seconds(common::kMaxSpanSeconds))
        return send_error(res, 400, "bad_request", "duration: at most 100 years");
      ends = common::add_clamped(starts.value_or(std::chrono::time_point_cast<WallTime::duration>(
                                     std::chrono::system_clock::now())),
                                 *d);
    }
    if (!ends) return send_error(res, 400, "bad_request", "ends_at or duration is required");
    if (starts && *ends <= *starts)
      return send_error(res, 400, "bad_request", "ends_at must be after starts_at");
    if (body.contains("comment")) {
      if (!body["comment"].is_string())
        return send_error(res, 400, "bad_request", "comment: expected a string");
      s.comment = body["comment"].get<std::string>();
      if (s.comment.size() > kMaxCommentBytes)
        return send_error(res, 400, "bad_request", "comment: at most 1024 bytes");
    }
    s.starts_at = starts;
    s.ends_at = *ends;
    const auto r = backend_.add_silence(s);
    if (!r.ok()) return send_error(res, r.error);
    res.set_header("Location", "/v1/silences/" + std::to_string(r.value.id));
    send_json(res, 201, to_json(r.value));
  }

  void remove_silence(const httplib::Request& req, httplib::Response& res) {
    std::uint64_t id = 0;
    const std::string s = req.matches[1];
    const auto p = std::from_chars(s.data(), s.data() + s.size(), id);
    if (p.ec != std::errc() || p.ptr != s.data() + s.size() || id == 0)
      return send_error(res, 400, "bad_request", "silence id: a positive integer");
    const auto r = backend_.remove_silence(id);
    if (!r.ok()) return send_error(res, r.error);
    if (!r.value) return send_error(res, 404, "not_found", "no silence " + s);
    res.status = 204;
  }

  const ApiOptions& options() const { return opt_; }

 private:
  ApiBackend& backend_;
  ApiOptions opt_;
};

void serve_asset(httplib::Response& res, std::string_view path) {
  for (std::size_t i = 0; i < kDashboardAssetCount; ++i) {
    const auto& a = kDashboardAssets[i];
    if (path == a.path) {
      res.set_header("Cache-Control", "no-cache");
      // The dashboard loads nothing from elsewhere (no CDN): say so to the browser too.
      res.set_header("Content-Security-Policy",
                     "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                     "script-src 'self'; connect-src 'self'; frame-ancestors 'none'");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_content(reinterpret_cast<const char*>(a.data), a.size, a.content_type);
      return;
    }
  }
  send_error(res, 404, "not_found", "no such asset");
}

}  // namespace

void register_api(httplib::Server& server, ApiBackend& backend, ApiOptions options) {
  // Shared by every handler; lives as long as the server's handlers (captured by value).
  auto router = std::make_shared<Router>(backend, std::move(options));
  using A = Router::Access;
  auto bind = [router](A access, void (Router::*fn)(const httplib::Request&, httplib::Response&)) {
    return router->guard(access, [router, fn](const httplib::Request& q, httplib::Response& s) {
      ((*router).*fn)(q, s);
    });
  };
  server.Get("/v1/devices", bind(A::Read, &Router::devices));
  server.Get(R"(/v1/devices/(.+))", bind(A::Read, &Router::device));
  server.Get("/v1/fleet", bind(A::Read, &Router::fleet));
  server.Get("/v1/fleet/history", bind(A::Read, &Router::fleet_history));
  server.Get("/v1/incidents", bind(A::Read, &Router::incidents));
  server.Get(R"(/v1/incidents/([^/]+))", bind(A::Read, &Router::incident));
  server.Get("/v1/alerts", bind(A::Read, &Router::alerts));
  server.Get("/v1/silences", bind(A::Read, &Router::silences));
  server.Get("/v1/doctor", bind(A::Read, &Router::doctor));
  server.Post("/v1/silences", bind(A::Write, &Router::add_silence));
  server.Delete(R"(/v1/silences/([^/]+))", bind(A::Write, &Router::remove_silence));
  for (const auto& read : router->options().extra_reads) {
    server.Get(read.first, router->guard(A::Read, [body = read.second](const httplib::Request&,
                                                                       httplib::Response& res) {
      res.set_content(body(), "application/json");
    }));
  }

  // Anything else under /v1: JSON, not httplib's empty 404.
  auto unknown = [](const httplib::Request& req, httplib::Response& res) {
    send_error(res, 404, "not_found",
               "no endpoint " + req.method + " " + req.path.substr(0, 200) + " (see docs/api.md)");
  };
  server.Get(R"(/v1(/.*)?)", router->guard(A::Read, unknown));
  server.Post(R"(/v1(/.*)?)", router->guard(A::Read, unknown));
  server.Put(R"(/v1(/.*)?)", router->guard(A::Read, unknown));
  server.Patch(R"(/v1(/.*)?)", router->guard(A::Read, unknown));
  server.Delete(R"(/v1(/.*)?)", router->guard(A::Read, unknown));

  if (router->options().dashboard) {
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      serve_asset(res, "/index.html");
    });
    server.Get(R"(/assets/([A-Za-z0-9_.-]+))",
               [](const httplib::Request& req, httplib::Response& res) {
                 serve_asset(res, "/" + req.matches[1].str());
               });
  }
}

}  // namespace presence::api
