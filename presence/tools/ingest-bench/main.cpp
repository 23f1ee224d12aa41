// presence-ingest-bench: how fast the pure ingest path runs (topic match + payload parse), and
// the publish queue. Prints JSON lines {"name":..,"value":..,"unit":..}; never asserted in tests.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "presence/core/engine.h"
#include "presence/ingest/output.h"
#include "presence/ingest/payload.h"
#include "presence/ingest/source.h"
#include "presence/ingest/sparkplug.h"

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

// The matcher and sources for a list of presets, in the service's matching order (issue 14).
struct Sources {
  TopicMatcher matcher;
  SourceTable table;
};
Sources sources(const std::vector<const char*>& presets) {
  std::vector<SourceSpec> specs;
  for (const char* p : presets) {
    SourceSpec s;
    s.preset = p;
    specs.push_back(s);
  }
  Sources out;
  std::vector<TopicPattern> status, ignore, heartbeat;
  std::vector<std::string> errors;
  compile_sources(specs, effective_device_classes(specs, {}), out.table, status, ignore, heartbeat,
                  errors);
  status.insert(status.end(), ignore.begin(), ignore.end());
  status.insert(status.end(), heartbeat.begin(), heartbeat.end());
  out.matcher = TopicMatcher(std::move(status));
  return out;
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
  // The same with the topic hot in cache, as Paho's just-received buffer is: 64 topics in turn.
  // The line above walks 100,000 topics spread over ~14 MB, so it mostly measures cache misses on
  // the bench's own strings (docs/benchmarks.md, "Ingest: topic match").
  report("ingest_heartbeat_plain_hot", rate(kN, [&](int i) {
           sink = sink + parse_message(m, hb_topics[i & 63], "1", false, limits).id.size();
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

  // Per preset (issue 14): each preset's real topics and payloads, through a matcher holding only
  // that preset ("alone") and one holding all six ("mixed": every message tried against every
  // ecosystem's patterns in matching order, the worst case of a mixed fleet).
  struct Case {
    const char* name;
    const char* preset;
    std::string prefix, suffix, payload;
  };
  const std::vector<Case> cases{
      {"tasmota_lwt", "tasmota", "tele/tasmota_", "/LWT", "Online"},
      {"tasmota_state", "tasmota", "tele/tasmota_", "/STATE",
       R"({"Time":"2024-02-24T22:20:38","Uptime":"0T00:10:11","UptimeSec":611,"Heap":24,"SleepMode":"Dynamic","Sleep":50,"LoadAvg":19,"MqttCount":1,"POWER":"OFF","Wifi":{"AP":1,"SSId":"ESP-Network","BSSId":"E6:8D:8C:4B:BE:F7","Channel":3,"Mode":"11n","RSSI":44,"Signal":-78,"LinkCount":1,"Downtime":"0T00:00:05"}})"},
      {"esphome_status", "esphome", "node-", "/status", "online"},
      {"homeassistant_availability", "homeassistant", "plug-", "/availability", "offline"},
      {"zigbee2mqtt_availability", "zigbee2mqtt", "zigbee2mqtt/floor 1/lamp-", "/availability",
       R"({"state":"online"})"},
      {"zigbee2mqtt_report", "zigbee2mqtt", "zigbee2mqtt/floor 1/lamp-", "",
       R"({"state":"ON","brightness":254,"color_temp":370,"linkquality":87})"},
      {"homie_state", "homie", "homie/thermo-", "/$state", "ready"},
      {"generic_status_json", "generic", "devices/sensor-", "/status",
       R"({"state":"online","firmware":"3.8.0","site":"berlin"})"},
  };
  const Sources mixed =
      sources({"homeassistant", "tasmota", "esphome", "zigbee2mqtt", "homie", "generic"});
  for (const auto& c : cases) {
    const Sources alone = sources({c.preset});
    std::vector<std::string> topics;
    topics.reserve(10000);
    for (int i = 0; i < 10000; ++i) topics.push_back(c.prefix + std::to_string(i) + c.suffix);
    for (const auto* which : {&alone, &mixed}) {
      std::size_t bad = 0;
      const double r = rate(kN / 2, [&](int i) {
        const auto p = parse_message(which->matcher, topics[i % 10000], c.payload, false, limits,
                                     &which->table);
        bad += p.what == Parsed::What::DeviceEvent ? 0 : 1;
        sink = sink + p.id.size();
      });
      if (bad != 0) std::fprintf(stderr, "%s: %zu messages not parsed as device events\n", c.name, bad);
      const std::string name = std::string("ingest_preset_") + c.name +
                               (which == &alone ? "_alone" : "_mixed");
      report(name.c_str(), r, "msg/s");
    }
  }

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

  // Sparkplug B (issue 15): the protobuf decode of an NDATA (one Double metric) and the tracker
  // on DDATA of known devices (decode + session lookup, no event: report by exception).
  {
    namespace sp = presence::ingest::sparkplug;
    sp::PayloadSpec spec;
    spec.timestamp = 1700000000000;
    spec.seq = 7;
    spec.values = {{"temperature", 21.5}};
    const std::string data = sp::encode(spec);
    sp::Payload pl;
    std::string err;
    report("ingest_sparkplug_decode_ndata", rate(kN, [&](int) {
             sink = sink + (sp::decode(data, pl, err) ? pl.metrics : 0);
           }), "msg/s");
    sp::Tracker tracker;
    std::vector<Parsed> events;
    std::vector<sp::Command> commands;
    constexpr int kNodes = 1000, kPerNode = 100;
    spec.bd_seq = 0;
    const std::string birth = sp::encode(spec);
    std::vector<std::string> topics;
    for (int n = 0; n < kNodes; ++n) {
      const std::string edge = "edge-" + std::to_string(n);
      tracker.on_message("spBv1.0/plant/NBIRTH/" + edge, birth, false, presence::core::mono_ms(0), 0, events, commands);
      for (int d = 0; d < kPerNode; ++d) {
        topics.push_back("spBv1.0/plant/DDATA/" + edge + "/dev-" + std::to_string(d));
        tracker.on_message("spBv1.0/plant/DBIRTH/" + edge + "/dev-" + std::to_string(d), data, false,
                           presence::core::mono_ms(0), 0, events, commands);
      }
    }
    report("ingest_sparkplug_ddata_known_device", rate(kN, [&](int i) {
             events.clear();
             tracker.on_message(topics[static_cast<std::size_t>(i) % topics.size()], data, false,
                                presence::core::mono_ms(1), 0, events, commands);
             sink = sink + events.size();
           }), "msg/s");
  }

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
