// Sources (issue 14): real fleets are mixed and already speak a convention. A source is one
// convention: its status and heartbeat topics, the words (or the JSON path) that mean online /
// offline / sleeping / other, where labels come from (JSON paths, topic levels such as {site},
// static labels) and the device class its devices are judged by. Presets (presets.h) are named,
// documented sources. Today's `topics.status` / `topics.heartbeat` are source 0 and parse as
// before (parse_status / parse_heartbeat in payload.h).
//
// Pure: no clock, no I/O. Compiled once at start; parse_source_* run on the hot path.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "presence/core/config.h"
#include "presence/ingest/payload.h"
#include "presence/ingest/topic_pattern.h"

namespace presence::ingest {

// What a source's configuration says (YAML `sources[i]`, docs/configuration.md "sources").
// Empty lists and strings mean "the preset's value" when `preset` is set.
struct SourceSpec {
  std::string name;    // for errors and the `source` label; defaults to the preset or "source<i>"
  std::string preset;  // homeassistant | tasmota | esphome | zigbee2mqtt | homie | generic
  std::vector<std::string> status;     // birth / will topics (patterns, topic_pattern.h)
  std::vector<std::string> heartbeat;  // any message is proof of life
  std::vector<std::string> ignore;     // topics under the filters above that are not devices
  // Where the state word is in a JSON payload ("state", "a.b"); empty: the whole payload is the
  // word. A JSON payload without the path, or a plain payload when a path is set, is bad_payload.
  std::string state_path;
  std::vector<std::string> online;    // words (case-insensitive) meaning connected
  std::vector<std::string> offline;   // disconnected by its last-will (unclean)
  std::vector<std::string> graceful;  // disconnected cleanly (Homie "disconnected")
  std::vector<std::string> sleeping;  // up but silent by design: never offline for silence
  std::vector<std::string> other;     // known words with no presence meaning (Homie "init")
  std::map<std::string, std::string> labels;       // static labels for every device
  std::map<std::string, std::string> label_paths;  // label -> JSON path in status/heartbeat
  std::string device_class;  // a name from device_classes; empty = none
  // Today's JSON conventions: {"state":..,"reason":..}, a "labels" object and label_keys
  // (ParseLimits). Set by the generic preset and for source 0.
  bool legacy_payload = false;
};

// A device class as configured (YAML `device_classes[i]`): the core's timeouts plus which devices
// belong to it by label (a source's device_class wins over a label match).
struct DeviceClassSpec {
  core::DeviceClass timeouts;                 // name and durations (0 = presence.* default)
  std::map<std::string, std::string> match;  // all labels must match; empty = only by source
};

// The meaning of a state word.
enum class StateWord : std::uint8_t { Online, Offline, Graceful, Sleeping, Other };

struct CompiledSource {
  std::string name;
  bool legacy_payload = false;
  std::vector<std::string> state_path;                      // split on '.'
  std::unordered_map<std::string, StateWord> words;         // lower-cased
  std::vector<Label> labels;                                // static
  std::vector<std::pair<std::string, std::vector<std::string>>> label_paths;
  std::uint8_t device_class = 0;  // 1-based index into the core's device_classes, 0 = none
};

// Everything the matcher and the parsers need: index 0 is topics.* (legacy), i + 1 is sources[i].
struct SourceTable {
  std::vector<CompiledSource> sources;
  // Label-matched classes in configuration order: (1-based class, labels that must all match).
  std::vector<std::pair<std::uint8_t, std::vector<Label>>> class_matches;
  const CompiledSource* find(std::uint16_t index) const {
    return index < sources.size() ? &sources[index] : nullptr;
  }
};

// Expands presets, checks every key, compiles the patterns (with TopicPattern::compile, the one
// rule) into `patterns` in matching order: every status pattern, then every ignore, then every
// heartbeat (so "zigbee2mqtt/{id+}/availability" is a status, "zigbee2mqtt/bridge/#" ignored and
// only the rest of "zigbee2mqtt/{id+}" a heartbeat). Errors are "sources[i].<key>: <reason>".
bool compile_sources(const std::vector<SourceSpec>& specs,
                     const std::vector<DeviceClassSpec>& classes, SourceTable& table,
                     std::vector<TopicPattern>& status, std::vector<TopicPattern>& ignore,
                     std::vector<TopicPattern>& heartbeat, std::vector<std::string>& errors);

// The configured classes plus the built-in ones a source names and the configuration does not
// define (preset_device_classes), in that order: index + 1 is the core's class number.
std::vector<DeviceClassSpec> effective_device_classes(const std::vector<SourceSpec>& specs,
                                                      const std::vector<DeviceClassSpec>& classes);

// The spec with its preset applied (what a user of `preset: x` gets; unknown preset = nullopt).
std::optional<SourceSpec> expand_preset(const SourceSpec& spec, std::string* error);

// Parsers for a non-legacy source (the legacy ones are in payload.h). Status: the state word.
Parsed parse_source_status(const CompiledSource& source, std::string_view payload,
                           const ParseLimits& limits);
Parsed parse_source_heartbeat(const CompiledSource& source, std::string_view payload,
                              const ParseLimits& limits);

// Adds what a source gives every message: topic-level labels, static labels, the device class
// (source first, then label matches over the message's labels).
void apply_source(const SourceTable& table, const TopicMatch& match, Parsed& parsed,
                  const ParseLimits& limits);

}  // namespace presence::ingest
