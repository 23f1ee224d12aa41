// Child process for alert_crash_test: runs a Dispatcher with one PagerDuty sink, submits
// trigger+resolve for N keys, reports (by creating <outbox>.durable) once they are on disk, then
// keeps delivering until the parent SIGKILLs it. Never exits cleanly on its own before the
// deadline: the parent decides when it "crashes".
//   alert_crash_child <outbox path> <url> <keys>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "presence/alert/dispatcher.h"
#include "presence/store/file_io.h"

using namespace presence;
using namespace presence::alert;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: alert_crash_child <outbox> <url> <keys>\n");
    return 2;
  }
  const std::string outbox = argv[1];
  PagerDutyConfig pd;
  pd.sink = sink_config("pagerduty", argv[2]);
  pd.sink.connect_timeout = std::chrono::milliseconds(500);
  pd.sink.timeout = std::chrono::seconds(30);
  pd.sink.backoff.initial = std::chrono::milliseconds(20);
  pd.sink.backoff.max = std::chrono::milliseconds(100);
  pd.routing_key = "rk";
  const int keys = std::atoi(argv[3]);

  DispatcherConfig c;
  c.outbox.path = outbox;
  c.anchor = {std::chrono::system_clock::now(), core::mono_ms(0)};
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(make_pagerduty_sink(pd));
  Dispatcher d(c, std::move(sinks));
  if (const auto started = d.start(); !started.ok()) {
    std::fprintf(stderr, "crash_child: %s\n", started.error.c_str());
    return 3;
  }
  std::vector<core::AlertIntent> intents;
  for (int k = 0; k < keys; ++k) {
    core::AlertIntent i;
    i.dedup_key = "dev-" + std::to_string(k);
    i.summary = i.dedup_key + " offline";
    intents.push_back(i);
    i.action = core::AlertIntent::Action::Resolve;
    intents.push_back(i);
  }
  d.submit(intents);
  if (!d.wait_durable(std::chrono::seconds(10))) return 4;
  if (!store::write_file_atomic(outbox + ".durable", "1").ok()) return 5;
  // Bounded: if the parent never kills us, leave anyway.
  std::this_thread::sleep_for(std::chrono::seconds(60));
  return 6;
}
