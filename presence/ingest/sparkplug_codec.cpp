#include "presence/ingest/sparkplug_codec.h"

#include <climits>
#include <nlohmann/json.hpp>

#include "sparkplug_b.pb.h"

namespace presence::ingest::sparkplug {

namespace {

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  for (;;) {
    const auto slash = s.find('/');
    out.push_back(s.substr(0, slash));
    if (slash == std::string_view::npos) break;
    s.remove_prefix(slash + 1);
    if (out.size() > 6) break;  // longer than any Sparkplug topic: refused below
  }
  return out;
}

bool good_element(std::string_view e) {
  return !e.empty() && e.find_first_of("+#") == std::string_view::npos;
}

std::optional<MessageType> type_of(std::string_view s) {
  static constexpr std::pair<std::string_view, MessageType> kTypes[] = {
      {"NBIRTH", MessageType::NBIRTH}, {"NDEATH", MessageType::NDEATH}, {"DBIRTH", MessageType::DBIRTH},
      {"DDEATH", MessageType::DDEATH}, {"NDATA", MessageType::NDATA},   {"DDATA", MessageType::DDATA},
      {"NCMD", MessageType::NCMD},     {"DCMD", MessageType::DCMD}};
  for (const auto& [name, t] : kTypes)
    if (s == name) return t;
  return std::nullopt;
}

bool device_type(MessageType t) {
  return t == MessageType::DBIRTH || t == MessageType::DDEATH || t == MessageType::DDATA || t == MessageType::DCMD;
}

}  // namespace

const char* to_string(MessageType type) {
  switch (type) {
    case MessageType::NBIRTH: return "NBIRTH";
    case MessageType::NDEATH: return "NDEATH";
    case MessageType::DBIRTH: return "DBIRTH";
    case MessageType::DDEATH: return "DDEATH";
    case MessageType::NDATA: return "NDATA";
    case MessageType::DDATA: return "DDATA";
    case MessageType::NCMD: return "NCMD";
    case MessageType::DCMD: return "DCMD";
    case MessageType::STATE: return "STATE";
  }
  return "?";
}

std::optional<Topic> parse_topic(std::string_view topic) {
  const auto parts = split(topic);
  if (parts.size() < 3 || parts[0] != kNamespace) return std::nullopt;
  Topic t;
  if (parts[1] == "STATE") {
    if (parts.size() != 3 || !good_element(parts[2])) return std::nullopt;
    t.type = MessageType::STATE;
    t.host = std::string(parts[2]);
    return t;
  }
  if (parts.size() != 4 && parts.size() != 5) return std::nullopt;
  const auto type = type_of(parts[2]);
  if (!type || !good_element(parts[1]) || !good_element(parts[3])) return std::nullopt;
  if (device_type(*type) != (parts.size() == 5)) return std::nullopt;
  if (parts.size() == 5 && !good_element(parts[4])) return std::nullopt;
  t.type = *type;
  t.group = std::string(parts[1]);
  t.edge = std::string(parts[3]);
  if (parts.size() == 5) t.device = std::string(parts[4]);
  return t;
}

bool decode(std::string_view bytes, Payload& out, std::string& error) {
  out = Payload{};
  if (bytes.size() > static_cast<std::size_t>(INT_MAX)) {
    error = "payload too large for protobuf";
    return false;
  }
  presence::sparkplug_b::Payload pb;
  if (!pb.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    error = "not a Sparkplug B protobuf payload (" + std::to_string(bytes.size()) + " bytes)";
    return false;
  }
  if (pb.has_timestamp()) out.timestamp = pb.timestamp();
  if (pb.has_seq()) out.seq = pb.seq();
  out.metrics = static_cast<std::size_t>(pb.metrics_size());
  for (const auto& m : pb.metrics()) {
    if (m.name() == kBdSeqMetric) {
      std::uint64_t v = 0;
      if (m.has_long_value()) v = m.long_value();
      else if (m.has_int_value()) v = m.int_value();
      else {
        error = "bdSeq metric without an integer value";
        return false;
      }
      if (v > 255) {
        error = "bdSeq " + std::to_string(v) + " out of range 0..255";
        return false;
      }
      out.bd_seq = v;
    } else if (m.name() == kRebirthMetric) {
      out.rebirth = m.has_boolean_value() && m.boolean_value();
    }
  }
  return true;
}

std::string encode(const PayloadSpec& spec) {
  presence::sparkplug_b::Payload pb;
  pb.set_timestamp(spec.timestamp);
  if (spec.seq) pb.set_seq(*spec.seq);
  if (spec.bd_seq) {
    auto* m = pb.add_metrics();
    m->set_name(std::string(kBdSeqMetric));
    m->set_timestamp(spec.timestamp);
    m->set_datatype(presence::sparkplug_b::Int64);
    m->set_long_value(*spec.bd_seq);
  }
  if (spec.rebirth) {
    auto* m = pb.add_metrics();
    m->set_name(std::string(kRebirthMetric));
    m->set_timestamp(spec.timestamp);
    m->set_datatype(presence::sparkplug_b::Boolean);
    m->set_boolean_value(true);
  }
  for (const auto& [name, value] : spec.values) {
    auto* m = pb.add_metrics();
    m->set_name(name);
    m->set_timestamp(spec.timestamp);
    m->set_datatype(10);  // Double
    m->set_double_value(value);
  }
  return pb.SerializeAsString();
}

bool parse_state(std::string_view payload, State& out, std::string& error) {
  auto j = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    error = "STATE payload is not a JSON object (Sparkplug 3.0: {\"online\":bool,\"timestamp\":ms})";
    return false;
  }
  auto online = j.find("online");
  auto ts = j.find("timestamp");
  if (online == j.end() || !online->is_boolean()) {
    error = "STATE payload without a boolean \"online\"";
    return false;
  }
  if (ts == j.end() || !ts->is_number_unsigned()) {
    error = "STATE payload without an unsigned integer \"timestamp\"";
    return false;
  }
  out.online = online->get<bool>();
  out.timestamp = ts->get<std::uint64_t>();
  return true;
}

std::string encode_state(const State& state) {
  return std::string("{\"online\":") + (state.online ? "true" : "false") +
         ",\"timestamp\":" + std::to_string(state.timestamp) + "}";
}

}  // namespace presence::ingest::sparkplug
