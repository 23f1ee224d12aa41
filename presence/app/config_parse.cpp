// The config room's scalars (issue 12: config.cpp split by concern): durations, sizes, numbers,
// ISO 8601 times, ${VAR} substitution, the enum words, and ConfigError's text.
#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "presence/app/config_parse.h"
#include "presence/common/iso8601.h"

namespace presence::app {

namespace internal {

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::optional<double> parse_double(std::string_view s) {
  double v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::string format_double(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::optional<WallTime> parse_iso8601(std::string_view s) {
  const auto t = common::parse_iso8601(s);
  if (!t) return std::nullopt;
  return std::chrono::floor<std::chrono::seconds>(*t);
}

std::string format_iso8601(WallTime t) {
  const auto days = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{days};
  const std::chrono::hh_mm_ss hms{t - days};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02ld:%02ld:%02ldZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long>(hms.hours().count()), static_cast<long>(hms.minutes().count()),
                static_cast<long>(hms.seconds().count()));
  return buf;
}

}  // namespace internal

using namespace internal;

std::string to_string(const ConfigError& e) {
  std::string out = e.file;
  if (e.line > 0) out += ":" + std::to_string(e.line);
  if (!e.key.empty()) out += ": " + e.key;
  out += ": " + e.reason;
  return out;
}

std::optional<std::string> real_env(std::string_view name) {
  const std::string n(name);
  if (const char* v = std::getenv(n.c_str())) return std::string(v);
  return std::nullopt;
}

std::optional<Duration> parse_duration(std::string_view text) {
  if (text == "0") return Duration::zero();
  // Units must appear largest first, each at most once: "1m30s" yes, "30s1m" and "1s1s" no.
  struct Unit {
    std::string_view name;
    std::int64_t ms;
  };
  static constexpr Unit units[] = {{"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000},
                                   {"s", 1'000},      {"ms", 1}};
  constexpr std::int64_t kMax = std::int64_t{100} * 366 * 86'400'000;  // 100 years
  std::int64_t total = 0;
  std::size_t next_unit = 0;
  std::size_t pos = 0;
  if (text.empty()) return std::nullopt;
  while (pos < text.size()) {
    const std::size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == start || pos - start > 12) return std::nullopt;
    const auto n = parse_int<std::int64_t>(text.substr(start, pos - start));
    std::size_t u = next_unit;
    for (; u < std::size(units); ++u) {
      const auto& name = units[u].name;
      if (text.substr(pos, name.size()) != name) continue;
      // "m" must not swallow the "m" of "ms".
      if (name == "m" && text.substr(pos, 2) == "ms") continue;
      break;
    }
    if (!n || u == std::size(units)) return std::nullopt;
    pos += units[u].name.size();
    next_unit = u + 1;
    // 12 digits of days overflow 64 bits (the config fuzz target found "149999999999d"): compare
    // before multiplying. total and the term are then both <= kMax, so their sum cannot overflow.
    if (*n > kMax / units[u].ms) return std::nullopt;
    total += *n * units[u].ms;
    if (total > kMax) return std::nullopt;
  }
  return Duration{total};
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
  const auto n = parse_int<std::uint64_t>(text.substr(0, pos));
  if (!n) return std::nullopt;
  const std::string unit = lower(text.substr(pos));
  static const std::map<std::string, std::uint64_t> units = {
      {"", 1},          {"b", 1},
      {"kb", 1000},     {"mb", 1000'000},        {"gb", 1000'000'000},
      {"kib", 1 << 10}, {"mib", 1 << 20},        {"gib", std::uint64_t{1} << 30}};
  const auto it = units.find(unit);
  if (it == units.end()) return std::nullopt;
  if (*n > std::numeric_limits<std::uint64_t>::max() / it->second) return std::nullopt;
  return *n * it->second;
}

Substituted substitute_env(std::string_view text, const EnvLookup& env) {
  Substituted out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t dollar = text.find('$', pos);
    if (dollar == std::string_view::npos) {
      out.value.append(text.substr(pos));
      break;
    }
    out.value.append(text.substr(pos, dollar - pos));
    if (text.substr(dollar, 3) == "$${") {  // escaped: literal "${"
      out.value += "${";
      pos = dollar + 3;
      continue;
    }
    if (text.substr(dollar, 2) != "${") {  // a lone '$' ($SYS/...) is kept as is
      out.value += '$';
      pos = dollar + 1;
      continue;
    }
    const std::size_t close = text.find('}', dollar);
    if (close == std::string_view::npos) {
      out.error = "unterminated '${' (write $${ for a literal ${)";
      return out;
    }
    const std::string_view inner = text.substr(dollar + 2, close - dollar - 2);
    const std::size_t dflt = inner.find(":-");
    const std::string_view name = inner.substr(0, dflt);
    const bool valid_name =
        !name.empty() && !(name[0] >= '0' && name[0] <= '9') &&
        std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
        });
    if (!valid_name) {
      out.error = "bad variable name " + quoted(name) + " in ${...}";
      return out;
    }
    std::optional<std::string> value = env(name);
    // Like the shell: ${VAR:-default} also applies when VAR is set but empty.
    if (dflt != std::string_view::npos && (!value || value->empty()))
      value = std::string(inner.substr(dflt + 2));
    if (!value) {
      out.error = "environment variable " + std::string(name) +
                  " is not set (use ${" + std::string(name) + ":-default} for a default)";
      return out;
    }
    out.value += *value;
    pos = close + 1;
  }
  return out;
}

std::optional<Listen> parse_listen(std::string_view text) {
  const std::string listen(text);
  std::string host;
  std::string port;
  if (!listen.empty() && listen.front() == '[') {
    const auto close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':')
      return std::nullopt;
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos || listen.find(':') != colon) return std::nullopt;
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  const auto p = parse_int<int>(port);
  if (host.empty() || !p || *p < 0 || *p > 65535) return std::nullopt;  // 0 = any free port
  bool loopback = host == "localhost";
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    loopback = (ntohl(v4.s_addr) >> 24) == 127;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    loopback = IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return Listen{host, *p, loopback};
}

const char* to_string(MqttProtocol v) { return enum_name(v); }
const char* to_string(Mode v) { return enum_name(v); }

}  // namespace presence::app
