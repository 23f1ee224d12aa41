#include "presence/tools/sim/fleet.h"

#include "presence/common/json_string.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <numeric>

namespace presence::sim {

std::uint64_t Rng::next() {
  std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double Rng::uniform01() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

Millis Rng::uniform(Millis lo, Millis hi) {
  if (hi <= lo) return lo;
  auto span = static_cast<std::uint64_t>(hi - lo) + 1;
  return lo + static_cast<Millis>(next() % span);
}

double Rng::exponential(double mean) {
  double u = uniform01();
  return -mean * std::log1p(-u) + 1e-9;
}

std::size_t Rng::index(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<double> parse_number(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

Expected<Millis> parse_duration(std::string_view text) {
  auto s = trim(text);
  std::size_t unit_at = s.size();
  while (unit_at > 0 && std::isalpha(static_cast<unsigned char>(s[unit_at - 1]))) --unit_at;
  auto unit = s.substr(unit_at);
  auto num = parse_number(s.substr(0, unit_at));
  if (!num || *num < 0)
    return Expected<Millis>::fail("bad duration '" + std::string(text) +
                                  "' (use e.g. 250ms, 30s, 5m, 2h)");
  double scale = 0;
  if (unit.empty() || unit == "s") scale = 1000;
  else if (unit == "ms") scale = 1;
  else if (unit == "m" || unit == "min") scale = 60'000;
  else if (unit == "h") scale = 3'600'000;
  else
    return Expected<Millis>::fail("bad duration unit '" + std::string(unit) + "' in '" +
                                  std::string(text) + "' (ms, s, m, h)");
  double ms = *num * scale;
  if (ms > 1e15) return Expected<Millis>::fail("duration '" + std::string(text) + "' too large");
  return ok(static_cast<Millis>(std::llround(ms)));
}

Expected<DurationRange> parse_duration_range(std::string_view text) {
  auto s = trim(text);
  auto dash = s.find('-');
  if (dash == std::string_view::npos) {
    auto d = parse_duration(s);
    if (!d) return Expected<DurationRange>::fail(d.error);
    return ok(DurationRange{*d, *d});
  }
  auto lo = parse_duration(s.substr(0, dash));
  auto hi = parse_duration(s.substr(dash + 1));
  if (!lo) return Expected<DurationRange>::fail(lo.error);
  if (!hi) return Expected<DurationRange>::fail(hi.error);
  if (*hi < *lo)
    return Expected<DurationRange>::fail("range '" + std::string(text) + "' has hi < lo");
  return ok(DurationRange{*lo, *hi});
}

Expected<double> parse_rate(std::string_view text) {
  auto s = trim(text);
  auto slash = s.find('/');
  auto num = parse_number(s.substr(0, slash));
  if (!num || *num < 0)
    return Expected<double>::fail("bad rate '" + std::string(text) +
                                  "' (use e.g. 5/s, 300/min, 2/h)");
  if (slash == std::string_view::npos) return ok(*num);
  auto unit = trim(s.substr(slash + 1));
  if (unit == "s") return ok(*num);
  if (unit == "m" || unit == "min") return ok(*num / 60.0);
  if (unit == "h") return ok(*num / 3600.0);
  return Expected<double>::fail("bad rate unit '" + std::string(unit) + "' in '" +
                                std::string(text) + "' (s, min, h)");
}

std::string format_duration(Millis ms) {
  char buf[64];
  if (ms % 1000 != 0) std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
  else std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(ms / 1000));
  return buf;
}

Expected<Mix> parse_mix(std::string_view text) {
  Mix mix;
  double total = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    auto item = trim(text.substr(start, comma == std::string_view::npos ? std::string_view::npos
                                                                        : comma - start));
    start = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    if (item.empty()) continue;
    auto colon = item.rfind(':');
    std::string name(trim(item.substr(0, colon)));
    double weight = 1;
    if (colon != std::string_view::npos) {
      auto w = parse_number(item.substr(colon + 1));
      if (!w || *w < 0)
        return Expected<Mix>::fail("bad weight in mix entry '" + std::string(item) + "'");
      weight = *w;
    }
    if (name.empty()) return Expected<Mix>::fail("empty name in mix entry '" + std::string(item) + "'");
    for (auto& [n, w] : mix.entries)
      if (n == name) return Expected<Mix>::fail("mix names '" + name + "' twice");
    mix.entries.emplace_back(std::move(name), weight);
    total += weight;
  }
  if (mix.entries.empty()) return Expected<Mix>::fail("empty mix '" + std::string(text) + "'");
  if (total <= 0) return Expected<Mix>::fail("mix '" + std::string(text) + "' has no weight");
  return ok(std::move(mix));
}

std::vector<std::size_t> assign_mix(const Mix& mix, std::size_t n, Rng& rng) {
  std::vector<std::size_t> out;
  out.reserve(n);
  double total = 0;
  for (auto& e : mix.entries) total += e.second;
  std::vector<std::size_t> count(mix.entries.size());
  std::vector<std::pair<double, std::size_t>> remainder;
  std::size_t given = 0;
  for (std::size_t i = 0; i < mix.entries.size(); ++i) {
    double exact = total > 0 ? static_cast<double>(n) * mix.entries[i].second / total : 0;
    count[i] = static_cast<std::size_t>(std::floor(exact));
    given += count[i];
    remainder.emplace_back(exact - std::floor(exact), i);
  }
  // Largest remainder first; ties go to the earlier entry, so the result is stable.
  std::stable_sort(remainder.begin(), remainder.end(),
                   [](auto& a, auto& b) { return a.first > b.first; });
  for (std::size_t k = 0; given < n && k < remainder.size(); ++k, ++given) ++count[remainder[k].second];
  for (std::size_t i = 0; i < count.size(); ++i) out.insert(out.end(), count[i], i);
  for (std::size_t i = out.size(); i > 1; --i) std::swap(out[i - 1], out[rng.index(i)]);
  return out;
}

const char* to_string(Behaviour b) {
  switch (b) {
    case Behaviour::WellBehaved: return "well_behaved";
    case Behaviour::TightLoop: return "tight_loop";
    case Behaviour::Stuck: return "stuck";
    case Behaviour::SlowJoiner: return "slow_joiner";
  }
  return "unknown";
}

std::optional<Behaviour> parse_behaviour(std::string_view name) {
  for (auto b : {Behaviour::WellBehaved, Behaviour::TightLoop, Behaviour::Stuck,
                 Behaviour::SlowJoiner})
    if (name == to_string(b)) return b;
  return std::nullopt;
}

namespace {

Millis backoff(const ReconnectPolicy& p, std::uint32_t failures, Rng& rng) {
  double cap = static_cast<double>(p.backoff_initial) *
               std::pow(p.backoff_multiplier, std::min<std::uint32_t>(failures, 60));
  auto c = static_cast<Millis>(std::min(cap, static_cast<double>(p.backoff_max)));
  return c / 2 + rng.uniform(0, c - c / 2);
}

}  // namespace

std::optional<Millis> reconnect_delay(Behaviour b, const ReconnectPolicy& p, std::uint32_t failures,
                                      bool after_session_loss, Rng& rng) {
  switch (b) {
    case Behaviour::WellBehaved:
      return backoff(p, failures, rng);
    case Behaviour::TightLoop:
      // Incident 000: firmware older than 07.07 "ignored standard reconnection protocols" and
      // retried at once, failure after failure. No backoff, ever.
      return rng.uniform(0, p.tight_loop_delay);
    case Behaviour::Stuck:
      // Incident 001: after the session was lost the device never re-handshook until power
      // cycled (here: a revive action). Before it ever had a session it retries like any device.
      if (after_session_loss) return std::nullopt;
      return backoff(p, failures, rng);
    case Behaviour::SlowJoiner:
      if (after_session_loss && failures == 0)
        return rng.uniform(p.slow_joiner_delay.lo, p.slow_joiner_delay.hi);
      return backoff(p, failures, rng);
  }
  return std::nullopt;
}

Millis heartbeat_delay(Millis interval, double jitter, Rng& rng) {
  double f = 1.0 + jitter * (2.0 * rng.uniform01() - 1.0);
  return std::max<Millis>(1, static_cast<Millis>(std::llround(static_cast<double>(interval) * f)));
}

Expected<std::vector<DeviceSpec>> build_fleet(const FleetOptions& o) {
  std::vector<Behaviour> behaviours;
  for (auto& [name, w] : o.behaviour.entries) {
    auto b = parse_behaviour(name);
    if (!b)
      return Expected<std::vector<DeviceSpec>>::fail(
          "unknown behaviour '" + name + "' (well_behaved, tight_loop, stuck, slow_joiner)");
    behaviours.push_back(*b);
  }
  Rng rng(o.seed);
  auto fw = assign_mix(o.firmware, o.devices, rng);
  auto site = assign_mix(o.site, o.devices, rng);
  auto model = assign_mix(o.model, o.devices, rng);
  auto beh = assign_mix(o.behaviour, o.devices, rng);
  std::vector<DeviceSpec> out(o.devices);
  for (std::size_t i = 0; i < o.devices; ++i) {
    char num[32];
    std::snprintf(num, sizeof num, "%0*zu", o.id_width, o.first_id + i);
    out[i].id = o.id_prefix + num;
    out[i].firmware = o.firmware.entries[fw[i]].first;
    out[i].site = o.site.entries[site[i]].first;
    out[i].model = o.model.entries[model[i]].first;
    out[i].behaviour = behaviours[beh[i]];
  }
  return ok(std::move(out));
}

bool matches(const Match& m, const DeviceSpec& d) {
  for (auto& [k, v] : m.labels) {
    const std::string* have = nullptr;
    std::string beh;
    if (k == "firmware") have = &d.firmware;
    else if (k == "site") have = &d.site;
    else if (k == "model") have = &d.model;
    else if (k == "behaviour") {
      beh = to_string(d.behaviour);
      have = &beh;
    }
    if (!have || *have != v) return false;
  }
  if (!m.ids.empty() && std::find(m.ids.begin(), m.ids.end(), d.id) == m.ids.end()) return false;
  return true;
}

std::string to_string(const Match& m) {
  std::string s;
  for (auto& [k, v] : m.labels) s += (s.empty() ? "" : ",") + k + "=" + v;
  if (!m.ids.empty()) s += (s.empty() ? "" : ",") + std::string("ids=") + std::to_string(m.ids.size());
  return s.empty() ? "all" : s;
}

}  // namespace presence::sim

namespace presence::sim {

std::string topic_for(std::string_view pattern, std::string_view id) {
  std::string out(pattern);
  for (auto at = out.find("{id}"); at != std::string::npos; at = out.find("{id}", at + id.size()))
    out.replace(at, 4, id);
  return out;
}

// Labels come from the command line or a scenario: common::append_json_string escapes them.
std::string status_payload(const DeviceSpec& d, bool online, bool json) {
  const char* state = online ? "online" : "offline";
  if (!json) return state;
  std::string out = "{\"v\":1,\"state\":\"";
  out += state;
  out += "\",\"firmware\":";
  common::append_json_string(out, d.firmware);
  out += ",\"site\":";
  common::append_json_string(out, d.site);
  out += ",\"model\":";
  common::append_json_string(out, d.model);
  out += "}";
  return out;
}

std::string heartbeat_payload(std::uint64_t seq, bool json) {
  if (!json) return std::to_string(seq);
  return "{\"v\":1,\"seq\":" + std::to_string(seq) + "}";
}

}  // namespace presence::sim
