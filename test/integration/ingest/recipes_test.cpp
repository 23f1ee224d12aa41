// docs/recipes.md is tested (issue 14): each section's YAML snippet is loaded into a real
// presenced on a real mosquitto, each `mosquitto_pub` line of its ```sh block runs (with -h/-p
// added) and each `# expect <id> <state>` / `# expect <id> label <key>=<value>` must come true on
// presence/devices/<id>. A recipe whose topics, words or keys drift from the code fails here.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "presence/ingest/presets.h"
#include "test/integration/service/harness.h"

using namespace presence::itest;
using presence::test::Mosquitto;
using presence::test::Process;

namespace {

struct Recipe {
  std::string title;
  int line = 0;
  std::string yaml;
  std::vector<std::string> steps;  // mosquitto_pub lines and "# expect" lines, in order
};

std::string read_doc() {
  std::ifstream in(std::string(PRESENCE_SOURCE_DIR) + "/docs/recipes.md");
  REQUIRE(in.good());
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::vector<Recipe> recipes(const std::string& doc) {
  std::vector<Recipe> out;
  std::istringstream in(doc);
  std::string line;
  int n = 0;
  std::string fence;  // "" outside a block, else its language
  while (std::getline(in, line)) {
    ++n;
    if (fence.empty() && line.rfind("## ", 0) == 0) {
      out.push_back({line.substr(3), n, {}, {}});
      continue;
    }
    if (line.rfind("```", 0) == 0) {
      fence = fence.empty() ? (line.size() > 3 ? line.substr(3) : "text") : "";
      continue;
    }
    if (out.empty() || fence.empty()) continue;
    if (fence == "yaml") out.back().yaml += line + "\n";
    if (fence == "sh" && (line.rfind("mosquitto_pub ", 0) == 0 || line.rfind("# expect ", 0) == 0))
      out.back().steps.push_back(line);
  }
  return out;
}

// "# expect 'living room/lamp' label k=v" -> {"living room/lamp", "label", "k=v"}
std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    if (i >= s.size()) break;
    if (s[i] == '\'') {
      const std::size_t end = s.find('\'', i + 1);
      out.push_back(s.substr(i + 1, end - i - 1));
      i = end == std::string::npos ? s.size() : end + 1;
    } else {
      const std::size_t end = s.find(' ', i);
      out.push_back(s.substr(i, end == std::string::npos ? std::string::npos : end - i));
      i = end == std::string::npos ? s.size() : end;
    }
  }
  return out;
}

void run_recipe(const Recipe& r) {
  INFO("docs/recipes.md:" << r.line << " \"" << r.title << "\"");
  Mosquitto broker;
  broker.start();
  PresencedOptions o;
  o.extra = r.yaml;
  Presenced presenced(broker.port(), o);
  presenced.start();
  Observer obs(broker.uri());
  for (const auto& step : r.steps) {
    INFO(step);
    if (step.rfind("mosquitto_pub ", 0) == 0) {
      const std::string cmd = "mosquitto_pub -h 127.0.0.1 -p " + std::to_string(broker.port()) +
                              " -q 1 " + step.substr(14);
      Process sh({"/bin/sh", "-c", cmd});
      REQUIRE(sh.wait_exit(20000ms) == 0);
      continue;
    }
    const auto w = words(step.substr(9));
    REQUIRE(w.size() >= 2);
    const std::string& id = w[0];
    if (w[1] == "label") {
      REQUIRE(w.size() == 3);
      const auto eq = w[2].find('=');
      const std::string key = w[2].substr(0, eq), value = w[2].substr(eq + 1);
      CHECK(wait_for(
          [&] {
            const auto j = obs.latest(id);
            return j.is_object() && j.contains("labels") && j["labels"].value(key, "") == value;
          },
          15s));
    } else {
      CHECK_MESSAGE(obs.wait_state(id, w[1], 15s), "state now: '" << obs.state(id) << "'\n"
                                                                  << presenced.log());
    }
  }
}

}  // namespace

TEST_CASE("docs/recipes.md: one section per preset, each with a snippet and expectations") {
  const std::string doc = read_doc();
  for (auto name : presence::ingest::preset_names()) {
    INFO(name);
    CHECK(doc.find("  - preset: " + std::string(name) + "\n") != std::string::npos);
  }
  const auto all = recipes(doc);
  CHECK(all.size() >= 7);
  for (const auto& r : all) {
    INFO(r.title);
    CHECK_FALSE(r.yaml.empty());
    CHECK(std::count_if(r.steps.begin(), r.steps.end(),
                        [](const std::string& s) { return s.rfind("# expect ", 0) == 0; }) >= 2);
  }
}

TEST_CASE("docs/recipes.md: every recipe works against a real mosquitto") {
  for (const auto& r : recipes(read_doc())) {
    SUBCASE(r.title.c_str()) { run_recipe(r); }
  }
}
