// The one word table of each core enum (presence/core/words.*): every word reads back as its
// value, the lists are in enum order, and anything else is refused rather than guessed.
#include "presence/core/words.h"

#include <doctest/doctest.h>

#include <string>

using namespace presence::core;

TEST_CASE("state words: the list is in enum order and every word reads back") {
  CHECK(std::string(to_string(State::Unknown)) == "unknown");
  CHECK(std::string(to_string(State::Online)) == "online");
  CHECK(std::string(to_string(State::Suspect)) == "suspect");
  CHECK(std::string(to_string(State::Offline)) == "offline");
  CHECK(std::string(to_string(State::Flapping)) == "flapping");
  for (std::size_t i = 0; i < kStateWords.size(); ++i) {
    const auto s = static_cast<State>(i);
    CHECK(std::string(kStateWords[i]) == to_string(s));
    CHECK(state_from_word(kStateWords[i]) == s);
  }
  CHECK_FALSE(state_from_word("Online").has_value());  // exact words only
  CHECK_FALSE(state_from_word("").has_value());
  CHECK_FALSE(state_from_word("offline ").has_value());
}

TEST_CASE("severity words are PagerDuty's four, in enum order") {
  CHECK(std::string(to_string(Severity::Critical)) == "critical");
  CHECK(std::string(to_string(Severity::Error)) == "error");
  CHECK(std::string(to_string(Severity::Warning)) == "warning");
  CHECK(std::string(to_string(Severity::Info)) == "info");
  for (std::size_t i = 0; i < kSeverityWords.size(); ++i)
    CHECK(severity_from_word(kSeverityWords[i]) == static_cast<Severity>(i));
  CHECK_FALSE(severity_from_word("warn").has_value());
  CHECK_FALSE(severity_from_word("fatal").has_value());
}

TEST_CASE("incident kind and stage words read back; unknown words are refused") {
  for (auto k : {IncidentKind::Drop, IncidentKind::Storm, IncidentKind::Blind})
    CHECK(incident_kind_from_word(to_string(k)) == k);
  for (auto s : {IncidentStage::Open, IncidentStage::Recovering, IncidentStage::Stragglers,
                 IncidentStage::Closed})
    CHECK(incident_stage_from_word(to_string(s)) == s);
  CHECK(std::string(to_string(IncidentKind::Storm)) == "storm");
  CHECK(std::string(to_string(IncidentStage::Recovering)) == "recovering");
  CHECK_FALSE(incident_kind_from_word("?").has_value());
  CHECK_FALSE(incident_stage_from_word("opened").has_value());
}

TEST_CASE("alert action words") {
  CHECK(std::string(to_string(AlertIntent::Action::Trigger)) == "trigger");
  CHECK(std::string(to_string(AlertIntent::Action::Resolve)) == "resolve");
  CHECK(std::string(to_string(AlertIntent::Action::Notify)) == "notify");
}
