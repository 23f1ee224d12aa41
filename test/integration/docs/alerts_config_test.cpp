// docs/alerts.md: every sink section's YAML snippet is a working config (issue 18). A user copies
// the snippet; if a key is renamed or a check added, this fails instead of their start-up.
// Convention: a ```yaml fenced block in docs/alerts.md starting with "alerts:" is a config
// snippet; it must load without errors (secrets from a fake environment) and make the sinks the
// section promises.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <set>

#include "presence/app/alerting.h"
#include "presence/app/config.h"
#include "test/support/process.h"

using namespace presence;

namespace {

struct Snippet {
  int line = 0;
  std::string section;  // the ### heading above it
  std::string text;
};

std::vector<Snippet> snippets() {
  std::ifstream in(std::string(PRESENCE_SOURCE_DIR) + "/docs/alerts.md");
  REQUIRE(in.good());
  std::vector<Snippet> out;
  std::string line, section;
  int n = 0;
  bool in_yaml = false, fenced = false;
  while (std::getline(in, line)) {
    ++n;
    if (!fenced && line.rfind("### ", 0) == 0) section = line.substr(4);
    if (line.rfind("```", 0) == 0) {
      if (!fenced) {
        fenced = true;
        in_yaml = line == "```yaml";
        if (in_yaml) out.push_back({n, section, ""});
      } else {
        fenced = in_yaml = false;
      }
      continue;
    }
    if (in_yaml) out.back().text += line + "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("docs/alerts.md: each sink's config snippet loads and makes its sinks") {
  const std::map<std::string, std::set<std::string>> expected = {
      {"PagerDuty (Events API v2)", {"pagerduty"}},
      {"Slack (incoming webhook)", {"slack"}},
      {"Generic webhook", {"webhook"}},
      {"Prometheus Alertmanager", {"alertmanager", "alertmanager-2"}},
      {"Microsoft Teams (Workflows webhook)", {"teams"}},
      {"PagerDuty change events", {"pagerduty", "pagerduty-change"}},
  };
  presence::test::TempDir dir;
  std::set<std::string> covered;
  for (const auto& s : snippets()) {
    if (s.text.rfind("alerts:", 0) != 0) continue;
    INFO("docs/alerts.md:" << s.line << " (" << s.section << ")");
    const std::map<std::string, std::string> env = {
        {"PAGERDUTY_ROUTING_KEY", std::string(32, 'k')},
        {"SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x"},
        {"WEBHOOK_SECRET", "s3cret"},
        {"TEAMS_WEBHOOK_URL", "https://prod.westeurope.logic.azure.com/workflows/x"}};
    auto r = app::load_config_string(
        "store:\n  dir: " + dir.path() + "\n" + s.text, "alerts.md",
        [&](std::string_view name) -> std::optional<std::string> {
          auto it = env.find(std::string(name));
          if (it == env.end()) return std::nullopt;
          return it->second;
        });
    for (const auto& e : r.errors) FAIL_CHECK(app::to_string(e));
    REQUIRE(r.config);
    std::set<std::string> names;
    for (const auto& sink : app::make_sinks(*r.config)) names.insert(sink->config().name);
    auto want = expected.find(s.section);
    REQUIRE_MESSAGE(want != expected.end(), "a config snippet in an unexpected section");
    CHECK(names == want->second);
    covered.insert(s.section);
  }
  // Every sink section has its snippet (the extractor did not silently find nothing).
  CHECK(covered.size() == expected.size());
}
