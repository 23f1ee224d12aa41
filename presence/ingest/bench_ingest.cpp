// presence-ingest-bench: how fast the pure ingest path runs (topic match + payload parse), and
// the publish queue. Prints JSON lines {"name":..,"value":..,"unit":..}; never asserted in tests.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "presence/core/engine.h"
#include "presence/ingest/output.h"
#include "presence/ingest/payload.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace presence::ingest;

void report(const char* name, double value, const char* unit) {
  std::printf("{\"name\":\"%s\",\"value\":%.1f,\"unit\":\"%s\"}\n", name, value, unit);
}

TopicMatcher matcher() {
  std::vector<TopicPattern> ps;
  auto add = [&](TopicKind k, const char* t) { ps.push_back(*TopicPattern::compile(k, t, nullptr)); };
  add(TopicKind::Status, "devices/{id}/status");
  add(TopicKind::Heartbeat, "devices/{id}/heartbeat");
  add(TopicKind::EmqxConnected, "$SYS/brokers/{node}/clients/{id}/connected");
  add(TopicKind::EmqxDisconnected, "$SYS/brokers/{node}/clients/{id}/disconnected");
  add(TopicKind::BrokerExtConnected, "$SYS/presence/{node}/clients/{id}/connected");
  add(TopicKind::BrokerExtDisconnected, "$SYS/presence/{node}/clients/{id}/disconnected");
  add(TopicKind::Uptime, "$SYS/broker/uptime");
  return TopicMatcher(std::move(ps));
}

template <typename F>
double rate(int n, F&& f) {
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) f(i);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return n / s;
}

}  // namespace

int main() {
  const auto m = matcher();
  const ParseLimits limits;
  constexpr int kDevices = 100000;
  std::vector<std::string> ids;
  ids.reserve(kDevices);
  for (int i = 0; i < kDevices; ++i) ids.push_back("sensor-" + std::to_string(i));
  std::vector<std::string> hb_topics, status_topics, bx_topics;
  for (const auto& id : ids) {
    hb_topics.push_back("devices/" + id + "/heartbeat");
    status_topics.push_back("devices/" + id + "/status");
    bx_topics.push_back("$SYS/presence/eu-1/clients/" + id + "/disconnected");
  }
  volatile std::size_t sink = 0;
  constexpr int kN = 1000000;

  report("ingest_heartbeat_plain", rate(kN, [&](int i) {
           sink = sink + parse_message(m, hb_topics[i % kDevices], "1", false, limits).id.size();
         }), "msg/s");
  report("ingest_heartbeat_json_labels", rate(kN, [&](int i) {
           sink = sink + parse_message(m, hb_topics[i % kDevices],
                                       R"({"firmware":"3.8.0","site":"berlin","rssi":-70})", false,
                                       limits).labels.size();
         }), "msg/s");
  report("ingest_status_plain", rate(kN, [&](int i) {
           sink = sink + parse_message(m, status_topics[i % kDevices], "online", false, limits).id.size();
         }), "msg/s");
  report("ingest_broker_ext_disconnected", rate(kN, [&](int i) {
           sink = sink + parse_message(m, bx_topics[i % kDevices],
                                       R"({"v":1,"boot":"9f00e1","seq":57,"session":40,"clientid":"x","superseded":false,"ts":1700000009876})",
                                       false, limits).session;
         }), "msg/s");
  report("ingest_unknown_topic", rate(kN, [&](int i) {
           sink = sink + static_cast<std::size_t>(
                             parse_message(m, "other/topic/" + std::to_string(i & 7), "x", false, limits).error);
         }), "msg/s");

  // Parse + engine, one "now" per 1000-message batch, as the service does.
  presence::core::Engine engine;
  for (const auto& id : ids) engine.intern(id);
  std::int64_t now_ms = 0;
  report("ingest_heartbeat_into_engine", rate(kN, [&](int i) {
           auto p = parse_message(m, hb_topics[i % kDevices], "1", false, limits);
           presence::core::Event e;
           e.kind = p.kind;
           e.source = p.source;
           e.device = engine.intern(p.id);
           if (i % 1000 == 0) now_ms += 10;
           e.at = presence::core::mono_ms(now_ms);
           engine.on_event(e);
         }), "msg/s");

  PublishQueue q(0, std::chrono::seconds(1));
  std::vector<presence::core::DeviceIndex> out;
  bool fleet = false;
  report("publish_queue_mark_take", rate(kN, [&](int i) {
           q.mark(static_cast<presence::core::DeviceIndex>(i % kDevices), presence::core::mono_ms(i));
           if (i % 1000 == 999) {
             out.clear();
             q.take(presence::core::mono_ms(i), fleet, out);
           }
         }), "op/s");
  (void)sink;
  return 0;
}
