// The replay format (docs/replay.md): one event per line, `<time> <kind> [device] [key=value ...]`.
// Parsing is separate from running so that every kind of bad line is unit tested
// (test/unit/tools/replay/replay_format_test.cpp) without an engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "presence/core/config.h"
#include "presence/core/event.h"
#include "presence/core/policy.h"
#include "presence/core/time.h"

namespace presence::tools {

// Limits: a recorded log can hold anything (a client id of 60 kB is legal MQTT). Past these the
// line is a bad line with a clear error, never a crash or an unbounded allocation.
inline constexpr std::size_t kMaxLineBytes = 64 * 1024;
inline constexpr std::size_t kMaxDeviceIdBytes = 1024;
inline constexpr std::size_t kMaxLabelKeyBytes = 64;
inline constexpr std::size_t kMaxLabelValueBytes = 256;
// 100 years of milliseconds: far beyond any recorded day, far below int64 overflow.
inline constexpr std::int64_t kMaxTimeMs = 100LL * 366 * 24 * 3600 * 1000;

enum class ReplayKind : std::uint8_t {
  Connect,
  Heartbeat,
  Disconnect,
  BrokerRestart,
  IngestLost,
  IngestRestored,
  Label,
  Tick,
};

const char* to_string(ReplayKind kind);
std::optional<ReplayKind> parse_replay_kind(std::string_view word);
// True for kinds that name a device (connect, heartbeat, disconnect, label).
bool has_device(ReplayKind kind);

struct ReplayLine {
  core::MonoTime at{};
  ReplayKind kind = ReplayKind::Tick;
  std::string device;  // empty for broker-restart, ingest-lost, ingest-restored, tick
  core::DisconnectReason reason = core::DisconnectReason::Unknown;
  core::Source source = core::Source::Replay;
  std::uint64_t session = 0;
  std::vector<std::pair<std::string, std::string>> labels;  // kind == Label only
};

struct ParsedLine {
  enum class Status : std::uint8_t { Event, Blank, Error };
  Status status = Status::Blank;
  ReplayLine line;
  std::string error;  // Status::Error: the reason, without file:line
};

// Parses one line (without its newline; a trailing '\r' is accepted).
ParsedLine parse_replay_line(std::string_view text);

// "12", "12.5", "12.500" (seconds, at most millisecond precision) or "12500ms".
std::optional<std::int64_t> parse_time_ms(std::string_view text);
// "45s", "500ms", "2m", "1h", or a bare number of seconds ("45", "1.5").
std::optional<core::Duration> parse_duration(std::string_view text);
// Formats milliseconds as seconds with three decimals: 12500 -> "12.500".
std::string format_time(std::int64_t ms);

// Reads one line of at most max_bytes; longer lines are consumed to their end and reported with
// too_long = true (line then holds only the first max_bytes). Returns false at end of input.
bool read_bounded_line(std::istream& in, std::string& line, bool& too_long,
                       std::size_t max_bytes = kMaxLineBytes);

// Applies `key=value` to a core Config (the same names as config.h and docs/core.md, e.g.
// "offline_grace=45s"). Returns an error message, or nothing on success.
std::optional<std::string> apply_config_override(core::Config& config, std::string_view assignment);
// Range and cross-field checks after all overrides: core::config_error (the same checks the
// service applies: offline_grace > 0, floor <= ceiling, flap_low < flap_high, ...) plus a few
// that only make a what-if run meaningless.
std::optional<std::string> check_config(const core::Config& config);
// The names apply_config_override accepts, for --help and error messages.
std::vector<std::string_view> config_override_keys();

// The alert policy's timing (presence/core/policy.h, docs/alert-policy.md) for what-if runs:
// alert_after, group_wait, group_interval, blind_alert_after. Same contract as
// apply_config_override.
std::optional<std::string> apply_policy_override(core::PolicyConfig& policy,
                                                 std::string_view assignment);
std::vector<std::string_view> policy_override_keys();

}  // namespace presence::tools
