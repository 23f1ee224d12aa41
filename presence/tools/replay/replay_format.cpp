#include "presence/tools/replay/replay_format.h"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <streambuf>
#include <system_error>

namespace presence::tools {
namespace {

constexpr std::array<std::pair<std::string_view, ReplayKind>, 8> kKinds{{
    {"connect", ReplayKind::Connect},
    {"heartbeat", ReplayKind::Heartbeat},
    {"disconnect", ReplayKind::Disconnect},
    {"broker-restart", ReplayKind::BrokerRestart},
    {"ingest-lost", ReplayKind::IngestLost},
    {"ingest-restored", ReplayKind::IngestRestored},
    {"label", ReplayKind::Label},
    {"tick", ReplayKind::Tick},
}};

// The canonical words are core::to_string(DisconnectReason), the ones the retained payload's
// "reason" uses (STYLE.md habit 10); the short forms from issue 2 are accepted as aliases.
constexpr std::array<std::pair<std::string_view, core::DisconnectReason>, 9> kReasons{{
    {"unknown", core::DisconnectReason::Unknown},
    {"graceful", core::DisconnectReason::Graceful},
    {"last_will", core::DisconnectReason::LastWill},
    {"lastwill", core::DisconnectReason::LastWill},
    {"keepalive_timeout", core::DisconnectReason::KeepaliveTimeout},
    {"keepalive", core::DisconnectReason::KeepaliveTimeout},
    {"takeover", core::DisconnectReason::Takeover},
    {"broker_initiated", core::DisconnectReason::BrokerInitiated},
    {"broker", core::DisconnectReason::BrokerInitiated},
}};

// core::to_string(Source) words; "broker-ext" (the room's name) is an alias.
constexpr std::array<std::pair<std::string_view, core::Source>, 6> kSources{{
    {"status", core::Source::Status},
    {"heartbeat", core::Source::Heartbeat},
    {"broker_ext", core::Source::BrokerExt},
    {"broker-ext", core::Source::BrokerExt},
    {"emqx", core::Source::Emqx},
    {"replay", core::Source::Replay},
}};

bool is_space(char c) { return c == ' ' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_control(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

// Splits on blanks; a token starting with '#' starts a trailing comment.
std::vector<std::string_view> tokenize(std::string_view text) {
  std::vector<std::string_view> tokens;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    if (i >= text.size() || text[i] == '#') break;
    const std::size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    tokens.push_back(text.substr(start, i - start));
  }
  return tokens;
}

// Shortens a bad token for an error message: a 60 kB id must not become a 60 kB log line.
std::string quote(std::string_view token) {
  constexpr std::size_t kShow = 40;
  std::string out = "'";
  for (std::size_t i = 0; i < token.size() && i < kShow; ++i) {
    out += is_control(token[i]) ? '?' : token[i];
  }
  if (token.size() > kShow) out += "...' (" + std::to_string(token.size()) + " bytes)";
  else out += "'";
  return out;
}

// Parses "<digits>[.<digits>]" as a fixed-point number with `scale` units per whole
// (e.g. scale 1000: "1.5" -> 1500). Rejects signs, empty parts, precision finer than one unit
// and anything above `max`.
std::optional<std::int64_t> parse_fixed(std::string_view text, std::int64_t scale,
                                        std::int64_t max) {
  if (text.empty()) return std::nullopt;
  const std::size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view frac = dot == std::string_view::npos ? std::string_view{}
                                                              : text.substr(dot + 1);
  if (whole.empty()) return std::nullopt;
  if (dot != std::string_view::npos && frac.empty()) return std::nullopt;
  std::int64_t value = 0;
  for (char c : whole) {
    if (!is_digit(c)) return std::nullopt;
    if (value > (max / 10)) return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value > max / scale) return std::nullopt;
  value *= scale;
  std::int64_t unit = scale;
  for (char c : frac) {
    if (!is_digit(c)) return std::nullopt;
    if (unit % 10 != 0) {
      if (c != '0') return std::nullopt;  // finer than one unit
      continue;
    }
    unit /= 10;
    value += unit * (c - '0');
  }
  if (value > max) return std::nullopt;
  return value;
}

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

bool valid_label_key(std::string_view key) {
  if (key.empty() || key.size() > kMaxLabelKeyBytes) return false;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

ParsedLine error(std::string message) {
  ParsedLine out;
  out.status = ParsedLine::Status::Error;
  out.error = std::move(message);
  return out;
}

}  // namespace

const char* to_string(ReplayKind kind) {
  for (const auto& [word, k] : kKinds) {
    if (k == kind) return word.data();
  }
  return "?";
}

std::optional<ReplayKind> parse_replay_kind(std::string_view word) {
  for (const auto& [w, k] : kKinds) {
    if (w == word) return k;
  }
  return std::nullopt;
}

bool has_device(ReplayKind kind) {
  return kind == ReplayKind::Connect || kind == ReplayKind::Heartbeat ||
         kind == ReplayKind::Disconnect || kind == ReplayKind::Label;
}

std::optional<std::int64_t> parse_time_ms(std::string_view text) {
  if (text.size() > 2 && text.substr(text.size() - 2) == "ms") {
    const std::string_view digits = text.substr(0, text.size() - 2);
    if (digits.find('.') != std::string_view::npos) return std::nullopt;
    return parse_fixed(digits, 1, kMaxTimeMs);
  }
  return parse_fixed(text, 1000, kMaxTimeMs);
}

std::optional<core::Duration> parse_duration(std::string_view text) {
  std::int64_t unit_ms = 1000;
  std::string_view number = text;
  auto ends_with = [&](std::string_view suffix) {
    return number.size() > suffix.size() && number.substr(number.size() - suffix.size()) == suffix;
  };
  if (ends_with("ms")) {
    unit_ms = 1;
    number.remove_suffix(2);
  } else if (ends_with("s")) {
    number.remove_suffix(1);
  } else if (ends_with("m")) {
    unit_ms = 60'000;
    number.remove_suffix(1);
  } else if (ends_with("h")) {
    unit_ms = 3'600'000;
    number.remove_suffix(1);
  }
  const auto value = parse_fixed(number, unit_ms, kMaxTimeMs);
  if (!value) return std::nullopt;
  return core::Duration{*value};
}

std::string format_time(std::int64_t ms) {
  const bool negative = ms < 0;
  const std::uint64_t abs_ms = negative ? 0 - static_cast<std::uint64_t>(ms)
                                        : static_cast<std::uint64_t>(ms);
  std::string frac = std::to_string(abs_ms % 1000);
  frac.insert(0, 3 - frac.size(), '0');
  return (negative ? "-" : "") + std::to_string(abs_ms / 1000) + "." + frac;
}

bool read_bounded_line(std::istream& in, std::string& line, bool& too_long, std::size_t max_bytes) {
  line.clear();
  too_long = false;
  std::streambuf* buf = in.rdbuf();
  if (buf == nullptr) return false;
  using traits = std::streambuf::traits_type;
  bool any = false;
  for (;;) {
    const traits::int_type c = buf->sbumpc();
    if (traits::eq_int_type(c, traits::eof())) {
      in.setstate(std::ios::eofbit);
      return any;
    }
    any = true;
    const char ch = traits::to_char_type(c);
    if (ch == '\n') return true;
    if (line.size() < max_bytes) {
      line.push_back(ch);
    } else {
      too_long = true;  // keep consuming to the newline, keep nothing more
    }
  }
}

ParsedLine parse_replay_line(std::string_view text) {
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  if (text.size() > kMaxLineBytes) {
    return error("line longer than " + std::to_string(kMaxLineBytes) + " bytes");
  }
  const std::vector<std::string_view> tokens = tokenize(text);
  if (tokens.empty()) return ParsedLine{};

  ParsedLine out;
  out.status = ParsedLine::Status::Event;
  ReplayLine& line = out.line;

  const auto at = parse_time_ms(tokens[0]);
  if (!at) {
    return error("bad time " + quote(tokens[0]) +
                 ": expected seconds like 12.500 (at most 3 decimals) or milliseconds like "
                 "12500ms, non-negative, at most 100 years");
  }
  line.at = core::mono_ms(*at);

  if (tokens.size() < 2) return error("missing kind after the time");
  const auto kind = parse_replay_kind(tokens[1]);
  if (!kind) {
    return error("unknown kind " + quote(tokens[1]) +
                 " (expected connect, heartbeat, disconnect, broker-restart, ingest-lost, "
                 "ingest-restored, label or tick)");
  }
  line.kind = *kind;

  std::size_t next = 2;
  if (has_device(line.kind)) {
    if (tokens.size() < 3) return error(std::string(to_string(line.kind)) + " needs a device id");
    const std::string_view id = tokens[2];
    if (id.size() > kMaxDeviceIdBytes) {
      return error("device id " + quote(id) + " longer than " + std::to_string(kMaxDeviceIdBytes) +
                   " bytes");
    }
    for (char c : id) {
      if (is_control(c)) return error("device id " + quote(id) + " contains a control character");
    }
    if (id.find('=') != std::string_view::npos) {
      return error("device id " + quote(id) + " contains '=' (did you forget the device?)");
    }
    line.device = std::string(id);
    next = 3;
  }

  bool seen_reason = false;
  bool seen_session = false;
  bool seen_source = false;
  for (std::size_t i = next; i < tokens.size(); ++i) {
    const std::string_view token = tokens[i];
    const std::size_t eq = token.find('=');
    if (eq == std::string_view::npos) {
      if (!has_device(line.kind) && i == next) {
        return error(std::string(to_string(line.kind)) + " is fleet-wide and takes no device (got " +
                     quote(token) + ")");
      }
      return error("expected key=value, got " + quote(token));
    }
    const std::string_view key = token.substr(0, eq);
    const std::string_view value = token.substr(eq + 1);

    if (line.kind == ReplayKind::Label) {
      if (!valid_label_key(key)) {
        return error("bad label key " + quote(key) + " (letters, digits, _ - . and at most " +
                     std::to_string(kMaxLabelKeyBytes) + " bytes)");
      }
      if (value.size() > kMaxLabelValueBytes) {
        return error("label value for " + quote(key) + " longer than " +
                     std::to_string(kMaxLabelValueBytes) + " bytes");
      }
      for (char c : value) {
        if (is_control(c)) return error("label value " + quote(value) + " contains a control character");
      }
      for (const auto& [k, v] : line.labels) {
        if (k == key) return error("label " + quote(key) + " given twice");
      }
      line.labels.emplace_back(std::string(key), std::string(value));
      continue;
    }

    if (key == "reason") {
      if (line.kind != ReplayKind::Disconnect) return error("reason= only applies to disconnect");
      if (seen_reason) return error("reason= given twice");
      seen_reason = true;
      bool found = false;
      for (const auto& [word, r] : kReasons) {
        if (word == value) {
          line.reason = r;
          found = true;
        }
      }
      if (!found) {
        return error("unknown reason " + quote(value) +
                     " (expected last_will, graceful, keepalive_timeout, takeover, broker_initiated or "
                     "unknown; lastwill, keepalive and broker also work)");
      }
    } else if (key == "session") {
      if (!has_device(line.kind)) return error("session= only applies to device events");
      if (seen_session) return error("session= given twice");
      seen_session = true;
      const auto session = parse_u64(value);
      if (!session) return error("bad session " + quote(value) + " (expected 0 .. 2^64-1)");
      line.session = *session;
    } else if (key == "source") {
      if (seen_source) return error("source= given twice");
      seen_source = true;
      bool found = false;
      for (const auto& [word, s] : kSources) {
        if (word == value) {
          line.source = s;
          found = true;
        }
      }
      if (!found) {
        return error("unknown source " + quote(value) +
                     " (expected status, heartbeat, broker_ext, emqx or replay)");
      }
    } else {
      return error("unknown option " + quote(key) + " for " + to_string(line.kind) +
                   " (expected reason=, session= or source=)");
    }
  }
  if (line.kind == ReplayKind::Label && line.labels.empty()) {
    return error("label needs at least one key=value");
  }
  return out;
}

namespace {

enum class FieldType : std::uint8_t { Duration, Double, Count };

struct Field {
  std::string_view name;
  FieldType type;
  core::Duration core::Config::*duration = nullptr;
  double core::Config::*real = nullptr;
  std::uint32_t core::Config::*count = nullptr;
};

constexpr Field dur(std::string_view name, core::Duration core::Config::*m) {
  return Field{name, FieldType::Duration, m, nullptr, nullptr};
}
constexpr Field real(std::string_view name, double core::Config::*m) {
  return Field{name, FieldType::Double, nullptr, m, nullptr};
}
constexpr Field count(std::string_view name, std::uint32_t core::Config::*m) {
  return Field{name, FieldType::Count, nullptr, nullptr, m};
}

// Same names as presence/core/config.h (STYLE.md habit 10).
const std::array<Field, 15> kFields{{
    dur("offline_grace", &core::Config::offline_grace),
    dur("online_stable_for", &core::Config::online_stable_for),
    real("heartbeat_timeout_factor", &core::Config::heartbeat_timeout_factor),
    dur("heartbeat_timeout_floor", &core::Config::heartbeat_timeout_floor),
    dur("heartbeat_timeout_ceiling", &core::Config::heartbeat_timeout_ceiling),
    dur("heartbeat_default_interval", &core::Config::heartbeat_default_interval),
    count("heartbeat_min_samples", &core::Config::heartbeat_min_samples),
    count("flap_history", &core::Config::flap_history),
    dur("flap_window", &core::Config::flap_window),
    real("flap_high", &core::Config::flap_high),
    real("flap_low", &core::Config::flap_low),
    dur("restart_grace_min", &core::Config::restart_grace_min),
    dur("restart_grace_max", &core::Config::restart_grace_max),
    dur("restart_grace_settle", &core::Config::restart_grace_settle),
    dur("reorder_window", &core::Config::reorder_window),
}};

}  // namespace

std::vector<std::string_view> config_override_keys() {
  std::vector<std::string_view> keys;
  for (const auto& f : kFields) keys.push_back(f.name);
  return keys;
}

std::optional<std::string> apply_config_override(core::Config& config,
                                                 std::string_view assignment) {
  const std::size_t eq = assignment.find('=');
  if (eq == std::string_view::npos) {
    return "expected key=value, got " + quote(assignment);
  }
  const std::string_view key = assignment.substr(0, eq);
  const std::string_view value = assignment.substr(eq + 1);
  for (const auto& f : kFields) {
    if (f.name != key) continue;
    switch (f.type) {
      case FieldType::Duration: {
        const auto d = parse_duration(value);
        if (!d) {
          return std::string(key) + ": bad duration " + quote(value) +
                 " (expected e.g. 45s, 500ms, 2m, 1h)";
        }
        config.*(f.duration) = *d;
        return std::nullopt;
      }
      case FieldType::Double: {
        double d = 0;
        const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), d);
        if (value.empty() || ec != std::errc{} || ptr != value.data() + value.size() ||
            !std::isfinite(d)) {
          return std::string(key) + ": bad number " + quote(value);
        }
        config.*(f.real) = d;
        return std::nullopt;
      }
      case FieldType::Count: {
        const auto n = parse_u64(value);
        if (!n || *n > std::numeric_limits<std::uint32_t>::max()) {
          return std::string(key) + ": bad count " + quote(value);
        }
        config.*(f.count) = static_cast<std::uint32_t>(*n);
        return std::nullopt;
      }
    }
  }
  std::string known;
  for (const auto& f : kFields) {
    if (!known.empty()) known += ", ";
    known += f.name;
  }
  return "unknown parameter " + quote(key) + " (known: " + known + ")";
}

namespace {

struct PolicyField {
  std::string_view name;
  core::Duration core::PolicyConfig::*duration;
};

const std::array<PolicyField, 4> kPolicyFields{{
    {"alert_after", &core::PolicyConfig::alert_after},
    {"group_wait", &core::PolicyConfig::group_wait},
    {"group_interval", &core::PolicyConfig::group_interval},
    {"blind_alert_after", &core::PolicyConfig::blind_alert_after},
}};

}  // namespace

std::vector<std::string_view> policy_override_keys() {
  std::vector<std::string_view> keys;
  for (const auto& f : kPolicyFields) keys.push_back(f.name);
  return keys;
}

std::optional<std::string> apply_policy_override(core::PolicyConfig& policy,
                                                 std::string_view assignment) {
  const std::size_t eq = assignment.find('=');
  if (eq == std::string_view::npos) return "expected key=value, got " + quote(assignment);
  const std::string_view key = assignment.substr(0, eq);
  const std::string_view value = assignment.substr(eq + 1);
  for (const auto& f : kPolicyFields) {
    if (f.name != key) continue;
    const auto d = parse_duration(value);
    if (!d) {
      return std::string(key) + ": bad duration " + quote(value) +
             " (expected e.g. 45s, 500ms, 2m, 1h)";
    }
    policy.*(f.duration) = *d;
    return std::nullopt;
  }
  return "unknown parameter " + quote(key);
}

std::optional<std::string> check_config(const core::Config& c) {
  // The core's own validation is authoritative (the same one the service's loader applies).
  if (std::string e = core::config_error(c); !e.empty()) return e;
  // Beyond it: values the core accepts but that make a what-if run meaningless.
  if (c.heartbeat_timeout_factor > 100.0) return "heartbeat_timeout_factor must be <= 100";
  return std::nullopt;
}

}  // namespace presence::tools
