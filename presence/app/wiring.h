// Config -> the options each room is built with, and the rooms' stats -> the /metrics numbers:
// the field mappings presenced's main carried (issue 12: main.cpp reads as wiring only). Pure
// functions, unit tested in test/unit/app/wiring_test.cpp. Where a config section is already the
// struct a room takes (mqtt, sparkplug, sources, overload: one struct, the config's key names)
// the mapping is one line.
#pragma once

#include <string>

#include "presence/api/health.h"
#include "presence/app/config.h"
#include "presence/common/log.h"
#include "presence/ha/node.h"
#include "presence/ingest/mqtt_link.h"
#include "presence/server/loop.h"

namespace presence::app {

// The MQTT link: the connection, the file's topics, sources and classes as the loader compiled
// them, the retained output and presenced's own birth/will topic (service_topic below).
ingest::MqttLinkOptions link_options(const Config& config);
// The engine loop: presence.* and the device classes the link numbers (the file's, then those
// the sources' presets name).
server::LoopOptions loop_options(const Config& config, const ingest::MqttLinkOptions& link);
// "presence/fleet" -> "presence/service": presenced's own retained birth/last-will sits next to
// its other output; in an HA pair one per instance ("presence/service/<ha.name>"), or a dead
// instance's will would mark the live one offline.
std::string service_topic(const Config& config);
// The HA node (ha: section, docs/ha.md); only used when config.ha.enabled().
ha::NodeConfig ha_node_config(const Config& config, common::LogFn log);
// The HTTP listeners' limits (http: section); idle_timeout rounded up to whole seconds, >= 1 s.
api::HttpLimits http_limits(const Config& config);
// /metrics and /readyz from the loop's and the MQTT link's stats snapshots (any thread).
api::Metrics metrics(const server::LoopStats& loop, const ingest::MqttStats& mqtt);

}  // namespace presence::app
