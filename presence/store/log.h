// Where the store and alert rooms write their log lines. The app wires this to its logger; the
// default writes one line to stderr. Callers rate-limit themselves (HELPERS.md: "logged once
// (rate-limited) with a counter").
#pragma once

#include <functional>
#include <string_view>

namespace presence::store {

using LogFn = std::function<void(std::string_view line)>;

// Writes "presenced: <line>\n" to stderr in one call.
void log_stderr(std::string_view line);

// Returns log if set, else log_stderr.
inline LogFn or_stderr(LogFn log) { return log ? std::move(log) : LogFn(log_stderr); }

}  // namespace presence::store
