#include "presence/ingest/presets.h"

#include <chrono>

namespace presence::ingest {

namespace {

using namespace std::chrono_literals;

std::vector<std::pair<std::string_view, SourceSpec>> make_presets() {
  std::vector<std::pair<std::string_view, SourceSpec>> out;

  // Home Assistant MQTT discovery's availability convention: payload_available "online",
  // payload_not_available "offline" (its defaults) on the device's availability_topic. There is
  // no single topic layout: "{id}/availability" is the common one; override `status` with yours.
  SourceSpec ha;
  ha.status = {"{id}/availability"};
  ha.online = {"online"};
  ha.offline = {"offline"};
  out.emplace_back("homeassistant", ha);

  // Tasmota: FullTopic "%prefix%/%topic%/": LWT "Online" (retained birth) / "Offline" (will) on
  // tele/<topic>/LWT; tele/<topic>/STATE every TelePeriod (default 300 s) is the heartbeat.
  SourceSpec tasmota;
  tasmota.status = {"tele/{id}/LWT"};
  tasmota.heartbeat = {"tele/{id}/STATE"};
  tasmota.online = {"Online"};
  tasmota.offline = {"Offline"};
  out.emplace_back("tasmota", tasmota);

  // ESPHome mqtt: birth "online" and will "offline" on <topic_prefix>/status, where topic_prefix
  // defaults to the node name.
  SourceSpec esphome;
  esphome.status = {"{id}/status"};
  esphome.online = {"online"};
  esphome.offline = {"offline"};
  out.emplace_back("esphome", esphome);

  // Zigbee2MQTT (availability enabled): zigbee2mqtt/<friendly name>/availability, retained,
  // {"state":"online"|"offline"} (plain words before 1.35, also accepted). Friendly names may
  // contain '/', hence {id+}. The bridge's own zigbee2mqtt/bridge/state is the device
  // "zigbee2mqtt". Device messages on zigbee2mqtt/<name> are heartbeats; commands (/set, /get)
  // and the bridge's other topics are not devices.
  SourceSpec z2m;
  z2m.status = {"zigbee2mqtt/{id+}/availability", "{id}/bridge/state"};
  z2m.heartbeat = {"zigbee2mqtt/{id+}"};
  z2m.ignore = {"zigbee2mqtt/bridge/#", "zigbee2mqtt/{id+}/set", "zigbee2mqtt/{id+}/set/+",
                "zigbee2mqtt/{id+}/get", "zigbee2mqtt/{id+}/get/+"};
  z2m.state_path = "state";
  z2m.online = {"online"};
  z2m.offline = {"offline"};
  z2m.device_class = "zigbee2mqtt";
  // Every device is reached through the bridge (issue 15): the bridge offline is one page naming
  // it, its devices unreachable behind it. The bridge's own id is "zigbee2mqtt" (a device is
  // never its own parent: the label means nothing on the bridge itself).
  z2m.labels = {{"parent", "zigbee2mqtt"}};
  out.emplace_back("zigbee2mqtt", z2m);

  // Homie 3/4: homie/<device>/$state. "sleeping" is announced by the device and is not offline;
  // "disconnected" is a clean disconnect, "lost" the will; "init" is still booting. "alert" is
  // connected and needing attention: present, so online.
  SourceSpec homie;
  homie.status = {"homie/{id}/$state"};
  homie.online = {"ready", "alert"};
  homie.offline = {"lost"};
  homie.graceful = {"disconnected"};
  homie.sleeping = {"sleeping"};
  homie.other = {"init"};
  out.emplace_back("homie", homie);

  // Today's convention (docs/topics.md): devices/{id}/status with "online"/"offline" or
  // {"state":..,"reason":..,"labels":{..}}, and devices/{id}/heartbeat.
  SourceSpec generic;
  generic.status = {"devices/{id}/status"};
  generic.heartbeat = {"devices/{id}/heartbeat"};
  generic.legacy_payload = true;
  out.emplace_back("generic", generic);
  return out;
}

const std::vector<std::pair<std::string_view, SourceSpec>>& presets() {
  static const auto all = make_presets();
  return all;
}

}  // namespace

const SourceSpec* find_preset(std::string_view name) {
  for (const auto& [n, spec] : presets())
    if (n == name) return &spec;
  return nullptr;
}

std::vector<std::string_view> preset_names() {
  std::vector<std::string_view> out;
  for (const auto& p : presets()) out.push_back(p.first);
  return out;
}

const std::vector<DeviceClassSpec>& preset_device_classes() {
  // Zigbee2MQTT's own availability timeouts: an active (mains) device must check in every
  // 10 min, a passive (battery) one every 25 h. presenced's adaptive timeout learns each device's
  // period inside that band: a router reporting every minute is judged after 10 min, a sensor
  // reporting every 4 h after 12 h, and none later than Zigbee2MQTT itself would give up.
  static const std::vector<DeviceClassSpec> classes = [] {
    DeviceClassSpec z;
    z.timeouts.name = "zigbee2mqtt";
    z.timeouts.heartbeat_timeout_floor = 10min;
    z.timeouts.heartbeat_timeout_ceiling = 25h;
    return std::vector<DeviceClassSpec>{z};
  }();
  return classes;
}

}  // namespace presence::ingest
