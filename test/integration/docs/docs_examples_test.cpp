// The docs' command examples are tested (issue 7): an on-call engineer pastes them at 3 am, so a
// renamed endpoint or a wrong flag in docs/runbook.md or docs/api.md must fail CI, not the night.
//
// Convention (docs/runbook.md, "Conventions"): inside ``` fenced blocks, a line starting with
// `curl ` (docs/api.md, docs/runbook.md) or `presencectl ` (docs/runbook.md) is an example; a
// trailing `\` continues it on the next line. Examples use only these shell variables:
//   $PRESENCED  base URL (http://127.0.0.1:9188)     $TOKEN     the API bearer token
//   $DEVICE     a device id       $SITE  a site label value
//   $INCIDENT   an incident id    $SILENCE  a silence id (a fresh one is made for each example)
// Each example runs through /bin/sh with those variables set; curl gets --fail and a status
// print added, and must exit 0 with an HTTP 2xx.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "test/integration/service/harness.h"

namespace presence::itest {
namespace {

const std::string kToken = "docs-test-token-0123456789";

struct Example {
  std::string file;
  int line;
  std::string command;
};

std::vector<Example> extract(const std::string& rel, bool with_presencectl) {
  std::ifstream in(std::string(PRESENCE_SOURCE_DIR) + "/" + rel);
  REQUIRE_MESSAGE(in.good(), "cannot read " << rel);
  std::vector<Example> out;
  bool fenced = false;
  std::string line;
  int n = 0;
  Example* open = nullptr;  // an example continued with a trailing backslash
  while (std::getline(in, line)) {
    ++n;
    const auto indent = line.find_first_not_of(' ');
    if (indent != std::string::npos && line.compare(indent, 3, "```") == 0) {
      fenced = !fenced;
      open = nullptr;
      continue;
    }
    if (!fenced) continue;
    std::string text = line;
    const bool continues = !text.empty() && text.back() == '\\';
    if (continues) text.pop_back();
    if (open) {
      open->command += " " + text;
    } else {
      const auto start = text.find_first_not_of(' ');
      if (start == std::string::npos) continue;
      const std::string body = text.substr(start);
      const bool is_curl = body.rfind("curl ", 0) == 0;
      const bool is_ctl = with_presencectl && body.rfind("presencectl ", 0) == 0;
      if (!is_curl && !is_ctl) continue;
      out.push_back({rel, n, body});
      if (continues) open = &out.back();
      continue;
    }
    if (!continues) open = nullptr;
  }
  return out;
}

// Drops a trailing "# comment" (outside quotes) from an example.
std::string strip_comment(const std::string& s) {
  char quote = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '#' && (i == 0 || s[i - 1] == ' ')) {
      return s.substr(0, i);
    }
  }
  return s;
}

struct Outcome {
  int rc;
  std::string output;
};

Outcome run(const std::string& command, const std::map<std::string, std::string>& env) {
  std::string cmd = strip_comment(command);
  if (cmd.rfind("curl ", 0) == 0)
    cmd = "curl --fail --silent --show-error --max-time 10 -o /dev/null -w 'HTTP %{http_code}\\n' " +
          cmd.substr(5);
  test::TempDir dir;
  const std::string log = dir.file("out.log");
  test::Process p({"/bin/sh", "-c", cmd}, log, env);
  const int rc = p.wait_exit(20000ms);
  return {rc, test::read_file(log)};
}

bool ok(const std::string& command, const Outcome& o) {
  if (o.rc != 0) return false;
  if (strip_comment(command).rfind("curl ", 0) != 0) return true;  // presencectl: exit 0 = 2xx
  const auto at = o.output.rfind("HTTP ");
  return at != std::string::npos && at + 5 < o.output.size() && o.output[at + 5] == '2';
}

int post_silence(int port) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(5s);
  httplib::Headers h{{"Authorization", "Bearer " + kToken}};
  auto res = cli.Post("/v1/silences", h, R"({"match":{"site":"berlin"},"duration":"1h"})",
                      "application/json");
  REQUIRE(res);
  REQUIRE_MESSAGE(res->status == 201, res->body);
  return nlohmann::json::parse(res->body).at("id").get<int>();
}

}  // namespace

TEST_CASE("every curl/presencectl example in docs/api.md and docs/runbook.md answers 2xx") {
  std::vector<Example> examples = extract("docs/api.md", false);
  const std::size_t from_api = examples.size();
  const auto runbook = extract("docs/runbook.md", true);
  examples.insert(examples.end(), runbook.begin(), runbook.end());
  MESSAGE(from_api << " example(s) in docs/api.md, " << runbook.size() << " in docs/runbook.md");
  // The runbook's examples cover every endpoint it tells on-call to use; fewer means the
  // extractor (or the convention) broke and this test would pass on nothing.
  REQUIRE(runbook.size() >= 15);

  test::Mosquitto broker;
  broker.start();
  PresencedOptions o;
  o.extra = "alerts:\n  policy:\n    blind_alert_after: 1s\n";
  Presenced p(broker.port(), o);
  {
    // The harness writes http.listen only; the runbook's writes need a token.
    std::string conf = test::read_file(p.config_path());
    const std::string listen = "  listen: 127.0.0.1:" + std::to_string(p.http_port()) + "\n";
    const auto at = conf.find(listen);
    REQUIRE(at != std::string::npos);
    conf.insert(at + listen.size(), "  token: " + kToken + "\n");
    std::ofstream(p.config_path()) << conf;
  }
  p.start();

  // A few devices with labels, as births (docs/topics.md).
  const std::vector<std::pair<std::string, std::string>> devices{
      {"sensor-42", "berlin"}, {"sensor-43", "berlin"}, {"pump-7", "hamburg"}};
  for (const auto& [id, site] : devices)
    mqtt_pub(broker.port(), "devices/" + id + "/status",
             R"({"state":"online","site":")" + site + R"(","firmware":"3.8.0"})", true);
  REQUIRE_MESSAGE(wait_for([&] { return p.status("/v1/devices/pump-7") == 200; }, 10s), p.log());

  // One real incident (Blind: presenced loses its broker for blind_alert_after), so the
  // /v1/incidents/{id} examples have something to show.
  REQUIRE(wait_for([&] { return p.metric("presence_restart_grace_active") == 0; }, 20s));
  broker.stop();
  int incident = -1;
  REQUIRE_MESSAGE(wait_for(
                      [&] {
                        auto j = nlohmann::json::parse(p.body("/v1/incidents"), nullptr, false);
                        if (j.is_discarded() || !j.contains("incidents") ||
                            j["incidents"].empty())
                          return false;
                        incident = j["incidents"][0].value("id", -1);
                        return incident >= 0;
                      },
                      15s),
                  p.log());
  broker.start();
  REQUIRE_MESSAGE(wait_for([&] { return p.status("/readyz") == 200; }, 20s), p.log());

  std::map<std::string, std::string> env{
      {"PRESENCED", "http://127.0.0.1:" + std::to_string(p.http_port())},
      {"TOKEN", kToken},
      {"DEVICE", "sensor-42"},
      {"SITE", "berlin"},
      {"INCIDENT", std::to_string(incident)},
      {"PRESENCE_URL", "http://127.0.0.1:" + std::to_string(p.http_port())},
      {"PRESENCE_TOKEN", kToken},
      {"PATH", std::string(PRESENCE_SOURCE_DIR) + "/scripts:" + std::getenv("PATH")}};

  // The runner can fail: a missing endpoint and a wrong token are caught.
  {
    const std::string bad = "curl $PRESENCED/v1/no-such-endpoint";
    CHECK_FALSE(ok(bad, run(bad, env)));
    const std::string denied =
        "curl -X DELETE -H 'Authorization: Bearer wrong' $PRESENCED/v1/silences/1";
    CHECK_FALSE(ok(denied, run(denied, env)));
  }

  for (const auto& e : examples) {
    if (e.command.find("$SILENCE") != std::string::npos)
      env["SILENCE"] = std::to_string(post_silence(p.http_port()));
    const Outcome out = run(e.command, env);
    CHECK_MESSAGE(ok(e.command, out), e.file << ":" << e.line << ": " << e.command
                                              << "\n  exit " << out.rc << ": " << out.output);
  }
  CHECK(p.running());
}

}  // namespace presence::itest
