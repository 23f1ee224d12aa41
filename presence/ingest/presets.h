// Presets (issue 14): a name that expands to a documented, overridable source. Every topic,
// word and timeout below is the ecosystem's documented default; docs/recipes.md shows each one
// against a real mosquitto (test/integration/ingest/recipes_test.cpp).
#pragma once

#include <string_view>
#include <vector>

#include "presence/ingest/source.h"

namespace presence::ingest {

// nullptr when there is no such preset.
const SourceSpec* find_preset(std::string_view name);
// In documentation order: homeassistant, tasmota, esphome, zigbee2mqtt, homie, generic.
std::vector<std::string_view> preset_names();
// Device classes a preset names (zigbee2mqtt's availability timeouts). A device_classes entry of
// the same name in the configuration replaces the built-in one.
const std::vector<DeviceClassSpec>& preset_device_classes();

}  // namespace presence::ingest
