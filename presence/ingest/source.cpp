#include "presence/ingest/source.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include <nlohmann/json.hpp>

#include "presence/ingest/presets.h"

namespace presence::ingest {

using core::DisconnectReason;
using core::EventKind;
using nlohmann::json;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    out.emplace_back(path.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

bool valid_path(std::string_view path) {
  if (path.empty()) return false;
  for (const auto& part : split_path(path))
    if (part.empty()) return false;
  return true;
}

const json* at_path(const json& j, const std::vector<std::string>& path) {
  const json* cur = &j;
  for (const auto& key : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

bool looks_like_json(std::string_view s) {
  s = trim(s);
  return !s.empty() && (s.front() == '{' || s.front() == '[');
}

void path_labels(const CompiledSource& source, const json& j, Parsed& p,
                 const ParseLimits& limits) {
  for (const auto& [label, path] : source.label_paths) {
    const json* v = at_path(j, path);
    if (v == nullptr) continue;  // absent: not every message carries every label
    std::string text;
    if (!detail::scalar_text(*v, text)) {
      p.error = ParseError::BadLabel;
      continue;
    }
    detail::put_label(p, label, std::move(text), limits);
  }
}

Parsed reject(ParseError error) {
  Parsed p;
  p.what = Parsed::What::Reject;
  p.error = error;
  return p;
}

}  // namespace

std::optional<SourceSpec> expand_preset(const SourceSpec& spec, std::string* error) {
  if (spec.preset.empty()) return spec;
  const SourceSpec* base = find_preset(spec.preset);
  if (base == nullptr) {
    if (error) {
      std::string names;
      for (auto n : preset_names()) names += (names.empty() ? "" : ", ") + std::string(n);
      *error = "unknown preset '" + spec.preset + "' (known: " + names + ")";
    }
    return std::nullopt;
  }
  SourceSpec out = *base;
  out.preset = spec.preset;
  out.name = spec.name;
  auto take = [](auto& dst, const auto& src) {
    if (!src.empty()) dst = src;
  };
  take(out.status, spec.status);
  take(out.heartbeat, spec.heartbeat);
  take(out.ignore, spec.ignore);
  take(out.state_path, spec.state_path);
  // The words are one map: giving any of them replaces all of the preset's words, so a word
  // never means two things.
  if (!spec.online.empty() || !spec.offline.empty() || !spec.graceful.empty() ||
      !spec.sleeping.empty() || !spec.other.empty()) {
    out.online = spec.online;
    out.offline = spec.offline;
    out.graceful = spec.graceful;
    out.sleeping = spec.sleeping;
    out.other = spec.other;
  }
  for (const auto& [k, v] : spec.labels) out.labels[k] = v;
  for (const auto& [k, v] : spec.label_paths) out.label_paths[k] = v;
  take(out.device_class, spec.device_class);
  return out;
}

std::vector<DeviceClassSpec> effective_device_classes(const std::vector<SourceSpec>& specs,
                                                      const std::vector<DeviceClassSpec>& classes) {
  std::vector<DeviceClassSpec> out = classes;
  for (const auto& s : specs) {
    const auto spec = expand_preset(s, nullptr);
    if (!spec || spec->device_class.empty()) continue;
    const bool defined = std::any_of(out.begin(), out.end(), [&](const DeviceClassSpec& c) {
      return c.timeouts.name == spec->device_class;
    });
    if (defined) continue;
    for (const auto& builtin : preset_device_classes())
      if (builtin.timeouts.name == spec->device_class) out.push_back(builtin);
  }
  return out;
}

bool compile_sources(const std::vector<SourceSpec>& specs,
                     const std::vector<DeviceClassSpec>& classes, SourceTable& table,
                     std::vector<TopicPattern>& status, std::vector<TopicPattern>& ignore,
                     std::vector<TopicPattern>& heartbeat, std::vector<std::string>& errors) {
  const std::size_t before = errors.size();
  // Source 0: topics.* (its patterns are compiled by compile_topics).
  if (table.sources.empty()) {
    CompiledSource legacy;
    legacy.name = "topics";
    legacy.legacy_payload = true;
    table.sources.push_back(std::move(legacy));
  }
  auto class_index = [&](const std::string& name) -> int {
    for (std::size_t i = 0; i < classes.size(); ++i)
      if (classes[i].timeouts.name == name) return static_cast<int>(i + 1);
    return -1;
  };
  table.class_matches.clear();
  for (std::size_t i = 0; i < classes.size(); ++i) {
    if (classes[i].match.empty()) continue;
    std::vector<Label> m(classes[i].match.begin(), classes[i].match.end());
    table.class_matches.emplace_back(static_cast<std::uint8_t>(i + 1), std::move(m));
  }
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const std::string at = "sources[" + std::to_string(i) + "]";
    std::string err;
    const auto spec = expand_preset(specs[i], &err);
    if (!spec) {
      errors.push_back(at + ".preset: " + err);
      continue;
    }
    const auto index = static_cast<std::uint16_t>(table.sources.size());
    CompiledSource src;
    src.name = !spec->name.empty()     ? spec->name
               : !spec->preset.empty() ? spec->preset
                                       : "source" + std::to_string(i);
    src.legacy_payload = spec->legacy_payload;
    if (spec->status.empty() && spec->heartbeat.empty())
      errors.push_back(at + ": needs a preset or at least one status or heartbeat pattern");
    auto compile = [&](const std::vector<std::string>& list, TopicKind kind, const char* key,
                       std::vector<TopicPattern>& out) {
      for (std::size_t k = 0; k < list.size(); ++k) {
        std::string e;
        auto p = TopicPattern::compile(kind, list[k], &e, index);
        if (!p) {
          errors.push_back(at + "." + key + "[" + std::to_string(k) + "]: " + e);
          continue;
        }
        out.push_back(std::move(*p));
      }
    };
    compile(spec->status, TopicKind::Status, "status", status);
    compile(spec->ignore, TopicKind::Ignore, "ignore", ignore);
    compile(spec->heartbeat, TopicKind::Heartbeat, "heartbeat", heartbeat);
    if (!spec->state_path.empty()) {
      if (valid_path(spec->state_path))
        src.state_path = split_path(spec->state_path);
      else
        errors.push_back(at + ".state_path: '" + spec->state_path +
                         "' is not a path such as state or status.value");
    }
    const std::pair<const std::vector<std::string>*, std::pair<StateWord, const char*>> lists[] = {
        {&spec->online, {StateWord::Online, "online"}},
        {&spec->offline, {StateWord::Offline, "offline"}},
        {&spec->graceful, {StateWord::Graceful, "graceful"}},
        {&spec->sleeping, {StateWord::Sleeping, "sleeping"}},
        {&spec->other, {StateWord::Other, "other"}},
    };
    for (const auto& [list, what] : lists) {
      for (const auto& w : *list) {
        const std::string key = lower(trim(w));
        if (key.empty()) {
          errors.push_back(at + "." + what.second + ": a word must not be empty");
          continue;
        }
        if (!src.words.emplace(key, what.first).second)
          errors.push_back(at + "." + what.second + ": '" + w +
                           "' already has another meaning in this source");
      }
    }
    if (!src.legacy_payload && !spec->status.empty() && src.words.empty())
      errors.push_back(at + ".online: a status topic needs its words (online, offline, ...)");
    for (const auto& [k, v] : spec->labels) {
      if (k.empty()) errors.push_back(at + ".labels: a label name must not be empty");
      else src.labels.emplace_back(k, v);
    }
    for (const auto& [k, path] : spec->label_paths) {
      if (k.empty() || !valid_path(path)) {
        errors.push_back(at + ".label_paths." + k + ": '" + path +
                         "' is not a path such as firmware or info.version");
        continue;
      }
      src.label_paths.emplace_back(k, split_path(path));
    }
    if (!spec->device_class.empty()) {
      const int c = class_index(spec->device_class);
      if (c < 0)
        errors.push_back(at + ".device_class: no device class named '" + spec->device_class +
                         "' (define it under device_classes)");
      else
        src.device_class = static_cast<std::uint8_t>(c);
    }
    table.sources.push_back(std::move(src));
  }
  return errors.size() == before;
}

Parsed parse_source_status(const CompiledSource& source, std::string_view payload,
                           const ParseLimits& limits) {
  if (payload.size() > limits.max_payload_bytes) return reject(ParseError::PayloadTooLarge);
  const std::string_view text = trim(payload);
  Parsed p;
  p.source = core::Source::Status;
  if (text.empty()) return p;  // Ignore: an empty retained message clears the status
  std::string word;
  if (looks_like_json(text)) {
    json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return reject(ParseError::BadJson);
    if (source.state_path.empty()) return reject(ParseError::BadPayload);
    const json* v = at_path(j, source.state_path);
    if (v == nullptr || !v->is_string()) return reject(ParseError::BadPayload);
    word = v->get<std::string>();
    path_labels(source, j, p, limits);
  } else {
    // A plain word also where a JSON path is configured: Zigbee2MQTT before 1.35 published
    // "online"/"offline" where it now publishes {"state":"online"}.
    word = std::string(text);
  }
  const auto it = source.words.find(lower(trim(word)));
  if (it == source.words.end()) return reject(ParseError::BadPayload);
  switch (it->second) {
    case StateWord::Online: p.kind = EventKind::Connected; break;
    case StateWord::Sleeping:
      p.kind = EventKind::Connected;
      p.asleep = true;
      break;
    case StateWord::Offline:
      p.kind = EventKind::Disconnected;
      p.reason = DisconnectReason::LastWill;
      break;
    case StateWord::Graceful:
      p.kind = EventKind::Disconnected;
      p.reason = DisconnectReason::Graceful;
      break;
    case StateWord::Other:
      p.labels.clear();
      return p;  // Ignore: known, but says nothing about presence
  }
  p.what = Parsed::What::DeviceEvent;
  return p;
}

Parsed parse_source_heartbeat(const CompiledSource& source, std::string_view payload,
                              const ParseLimits& limits) {
  // Any payload is proof of life; labels are a bonus (as parse_heartbeat).
  Parsed p;
  p.what = Parsed::What::DeviceEvent;
  p.kind = EventKind::Heartbeat;
  p.source = core::Source::Heartbeat;
  if (payload.size() > limits.max_payload_bytes) {
    p.error = ParseError::PayloadTooLarge;
    return p;
  }
  // Only parse when a label wants it: Tasmota STATE and Zigbee2MQTT bodies are JSON of a few
  // hundred bytes that presence does not need otherwise.
  if (!source.label_paths.empty() && looks_like_json(payload)) {
    json j = json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.is_object())
      path_labels(source, j, p, limits);
    else
      p.error = ParseError::BadJson;
  }
  return p;
}

void apply_source(const SourceTable& table, const TopicMatch& match, Parsed& p,
                  const ParseLimits& limits) {
  for (std::uint8_t i = 0; i < match.label_count; ++i)
    detail::put_label(p, match.labels[i].key, std::string(match.labels[i].value), limits);
  const CompiledSource* source = table.find(match.source);
  if (source == nullptr) return;
  for (const auto& [k, v] : source->labels) detail::put_label(p, k, v, limits);
  if (source->device_class != 0) {
    p.device_class = source->device_class;
    return;
  }
  // By label: the labels this message carries (a heartbeat without labels leaves the class the
  // birth gave as it is: device_class 0 = no opinion).
  for (const auto& [cls, want] : table.class_matches) {
    bool all = !want.empty();
    for (const auto& kv : want) {
      // A named pair, not a structured binding: clang 14 (the fuzz build) cannot capture one.
      const auto it = std::find_if(p.labels.begin(), p.labels.end(),
                                   [&](const Label& l) { return l.first == kv.first; });
      if (it == p.labels.end() || it->second != kv.second) {
        all = false;
        break;
      }
    }
    if (all) {
      p.device_class = cls;
      return;
    }
  }
}

}  // namespace presence::ingest
