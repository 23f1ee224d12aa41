// The one owner of every core enum <-> word mapping (STYLE.md habit 11, issue 12 step 3). The same
// words appear in retained payloads, the API, metrics, snapshots, alert payloads and docs; a second
// table drifts and users see the disagreement. to_string() is declared next to each enum (event.h,
// decision.h, fleet.h) and defined in words.cpp; the reverse direction and the word lists live here.
#pragma once

#include <array>
#include <optional>
#include <string_view>

#include "presence/core/decision.h"
#include "presence/core/event.h"
#include "presence/core/fleet.h"

namespace presence::core {

const char* to_string(AlertIntent::Action);

// Every word of an enum, in the enum's order (index = static_cast<std::size_t>(value)).
inline constexpr std::array<const char*, 5> kStateWords = {"unknown", "online", "suspect",
                                                           "offline", "flapping"};
inline constexpr std::array<const char*, 4> kSeverityWords = {"critical", "error", "warning",
                                                              "info"};

// What users see (issue 15): a device that is down (suspect, offline, flapping) while an ancestor
// is down (AlertPolicy::unreachable_behind) reads "unreachable", with that ancestor as its parent.
// It is the policy's judgement, not an engine state: the engine still counts it by its own state
// (presence/fleet counts, presence_devices{state}); the API, the retained device topic and the
// dashboard show this word. An online device is reachable whatever its parent says.
inline constexpr std::string_view kUnreachableWord = "unreachable";
const char* shown_state_word(State state, std::string_view down_ancestor);

// Word -> enum; nullopt for anything that is not exactly one of the words above.
std::optional<State> state_from_word(std::string_view word);
std::optional<Severity> severity_from_word(std::string_view word);
std::optional<IncidentKind> incident_kind_from_word(std::string_view word);
std::optional<IncidentStage> incident_stage_from_word(std::string_view word);

}  // namespace presence::core
