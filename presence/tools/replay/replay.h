// Runs a replay log (docs/replay.md) through a core::Engine on simulated time and writes every
// decision. presence-replay is a thin main around run_replay; tests call it on a string stream.
#pragma once

#include <array>
#include <cstddef>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "presence/core/config.h"
#include "presence/core/fleet.h"
#include "presence/core/policy.h"
#include "presence/core/time.h"

namespace presence::tools {

struct ReplayOptions {
  core::Config config;
  // The alert policy and fleet monitor run as the engine's decision observer, as in the service,
  // so a replay shows the pages a day would have produced. alerts = false: transitions only.
  bool alerts = true;
  core::PolicyConfig policy;
  core::FleetConfig fleet;
  bool strict = false;        // first bad line stops the replay
  bool json = false;          // JSON lines instead of the human form
  bool summary = true;        // summary after the last line
  bool show_events = false;   // echo each input event before its decisions (the demo uses it)
  bool show_heartbeats = false;  // with show_events: echo heartbeats too (there are many)
  bool show_final = false;    // list every device's final state in the summary
  bool color = false;         // ANSI colours in the human form (presence-replay: when a tty)
  // The service ticks its engine about once a second; replay does the same on simulated time so
  // timers fire at the times they would in production. 0 = tick only on `tick` lines and at end.
  core::Duration tick_interval{std::chrono::seconds(1)};
  std::optional<core::MonoTime> until;  // keep ticking to this time after the last line
  // > 0: pace lines at this many simulated seconds per real second (the demo; the only place
  // replay reads a real clock). 0: as fast as possible (tests, what-if runs).
  double speed = 0;
  std::size_t max_error_lines = 20;     // bad lines reported one by one; the rest only counted
};

struct ReplaySummary {
  std::size_t lines = 0;
  std::size_t events = 0;      // lines that fed the engine (incl. label and tick)
  std::size_t bad_lines = 0;
  std::size_t transitions = 0;
  std::size_t alerts = 0;
  std::map<std::string, std::size_t> transitions_by_kind;   // "online -> suspect"
  std::map<std::string, std::size_t> transitions_by_cause;  // to_string(Cause)
  std::array<std::size_t, 5> final_counts{};                // per core::State
  std::size_t devices = 0;
  bool aborted = false;  // strict mode stopped at a bad line
  std::optional<core::MonoTime> first_at;
  std::optional<core::MonoTime> last_at;
};

// `name` is the file name used in "name:line: reason" errors. Decisions and the summary go to
// out, bad-line errors to err. Never throws on bad input.
ReplaySummary run_replay(std::istream& in, std::string_view name, const ReplayOptions& options,
                         std::ostream& out, std::ostream& err);

// Minimal JSON string escaping for the JSON-lines output (also used by presence-bench).
std::string json_escape(std::string_view text);

}  // namespace presence::tools
