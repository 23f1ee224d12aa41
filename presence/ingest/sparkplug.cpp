#include "presence/ingest/sparkplug.h"

namespace presence::ingest::sparkplug {

namespace {

// The bdSeq of the session after b: 8 bits, wrapping 255 -> 0. Only the very next session can
// die before its NBIRTH reaches us (an edge node reconnects after its previous connection is
// gone); any other bdSeq that is not the current birth's is an old will.
bool next_session(std::uint8_t d, std::uint8_t b) { return static_cast<std::uint8_t>(b + 1) == d; }

Parsed event(std::string id, core::EventKind kind, core::DisconnectReason reason, bool retained) {
  Parsed p;
  p.what = retained ? Parsed::What::DeviceResync : Parsed::What::DeviceEvent;
  p.topic_kind = TopicKind::Status;
  p.id = std::move(id);
  p.kind = kind;
  p.reason = reason;
  p.source = core::Source::Status;
  return p;
}

}  // namespace

Tracker::Tracker(Options options, ParseLimits limits) : options_(std::move(options)), limits_(std::move(limits)) {}

std::optional<std::uint8_t> Tracker::bd_seq(std::string_view node_id) const {
  auto it = nodes_.find(std::string(node_id));
  if (it == nodes_.end()) return std::nullopt;
  return it->second.bd_seq;
}

bool Tracker::alive(std::string_view node_id) const {
  auto it = nodes_.find(std::string(node_id));
  return it != nodes_.end() && it->second.alive;
}

ParseError Tracker::on_message(std::string_view topic, std::string_view payload, bool retained, core::MonoTime now,
                               std::uint64_t wall_ms, std::vector<Parsed>& events, std::vector<Command>& commands,
                               std::string* detail) {
  ++counters_.messages;
  auto fail = [&](ParseError e, std::string why) {
    if (e == ParseError::BadPayload || e == ParseError::BadJson) ++counters_.bad_payloads;
    if (e == ParseError::UnknownTopic) ++counters_.bad_topics;
    if (detail != nullptr) *detail = std::move(why);
    return e;
  };
  const auto t = parse_topic(topic);
  if (!t) return fail(ParseError::UnknownTopic, "not a Sparkplug B topic");
  if (payload.size() > limits_.max_payload_bytes) return fail(ParseError::PayloadTooLarge, "payload too large");

  if (t->type == MessageType::STATE) {
    if (t->host.size() > limits_.max_id_bytes) return fail(ParseError::IdTooLong, "host id too long");
    State st;
    std::string why;
    if (!parse_state(payload, st, why)) return fail(ParseError::BadJson, why);
    // Sparkplug 3.0: a STATE older than the last one seen for the host is stale (the retained
    // message of an earlier session arriving late).
    auto [it, fresh] = state_ts_.try_emplace(t->host, st.timestamp);
    if (!fresh) {
      if (st.timestamp < it->second) {
        ++counters_.stale_states;
        return ParseError::None;
      }
      it->second = st.timestamp;
    }
    Parsed p = event(t->host, st.online ? core::EventKind::Connected : core::EventKind::Disconnected,
                     st.online ? core::DisconnectReason::Unknown : core::DisconnectReason::LastWill, retained);
    events.push_back(std::move(p));
    return ParseError::None;
  }

  const std::string node_id = t->group + "/" + t->edge;
  const std::string device_id = t->device.empty() ? std::string() : node_id + "/" + t->device;
  if (node_id.size() > limits_.max_id_bytes || device_id.size() > limits_.max_id_bytes)
    return fail(ParseError::IdTooLong, "Sparkplug id longer than max_id_bytes");
  if (t->type == MessageType::NCMD || t->type == MessageType::DCMD) return ParseError::None;  // commands: not presence

  Payload pl;
  std::string why;
  if (!decode(payload, pl, why)) return fail(ParseError::BadPayload, why);

  auto found = nodes_.find(node_id);
  if (found == nodes_.end()) {
    if (nodes_.size() >= options_.max_nodes) {
      ++counters_.nodes_refused;
      return fail(ParseError::BadPayload, "more than max_nodes Sparkplug edge nodes");
    }
    found = nodes_.emplace(node_id, Node{}).first;
  }
  Node& node = found->second;

  auto node_labels = [&](Parsed& p) {
    p.labels.emplace_back("sparkplug_group", t->group);
    if (!options_.primary_host.empty()) p.labels.emplace_back("parent", options_.primary_host);
  };
  auto device_labels = [&](Parsed& p) {
    p.labels.emplace_back("sparkplug_group", t->group);
    p.labels.emplace_back("edge_node", node_id);
    p.labels.emplace_back("parent", node_id);
  };
  auto node_up = [&]() {
    node.known = true;
    Parsed p = event(node_id, core::EventKind::Connected, core::DisconnectReason::Unknown, retained);
    node_labels(p);
    events.push_back(std::move(p));
  };
  // The node is alive but presenced missed its NBIRTH: ask for a rebirth, when configured, at
  // most once per rebirth_interval per node (a node that ignores it is not flooded).
  auto maybe_rebirth = [&]() {
    if (!options_.rebirth || node.born) return;
    const std::int64_t t_ms = core::to_ms(now);
    if (node.rebirth_sent && t_ms - node.last_rebirth < options_.rebirth_interval.count()) {
      ++counters_.rebirths_suppressed;
      return;
    }
    node.rebirth_sent = true;
    node.last_rebirth = t_ms;
    PayloadSpec spec;
    spec.timestamp = wall_ms;
    spec.rebirth = true;
    commands.push_back({std::string(kNamespace) + "/" + t->group + "/NCMD/" + t->edge, encode(spec)});
    ++counters_.rebirths_requested;
  };

  switch (t->type) {
    case MessageType::NBIRTH: {
      if (!pl.bd_seq) return fail(ParseError::BadPayload, "NBIRTH without a bdSeq metric");
      const auto b = static_cast<std::uint8_t>(*pl.bd_seq);
      node.born = true;
      node.bd_seq = b;
      node.devices.clear();  // a new session: its devices are born again (DBIRTH)
      if (node.dead_ahead && *node.dead_ahead == b) {
        // go-sparkplugb v0.3.2: the will of this very session (same bdSeq) overtook its NBIRTH.
        // The node is already gone: it stays down, the birth is not a return.
        node.dead_ahead.reset();
        node.alive = false;
        ++counters_.births_dead_on_arrival;
        return ParseError::None;
      }
      node.dead_ahead.reset();
      node.alive = true;
      node_up();
      return ParseError::None;
    }
    case MessageType::NDEATH: {
      if (!pl.bd_seq) return fail(ParseError::BadPayload, "NDEATH without a bdSeq metric");
      const auto d = static_cast<std::uint8_t>(*pl.bd_seq);
      if (node.bd_seq && d != *node.bd_seq) {
        if (next_session(d, *node.bd_seq)) {
          // The death of a session whose NBIRTH has not reached us: remember it, so the NBIRTH
          // that follows is known dead. The node's current session (if any) ended too: the
          // edge node only reconnects after its previous connection is gone.
          node.dead_ahead = d;
          ++counters_.deaths_ahead;
        } else {
          // The broker's late will of an earlier session (bdSeq of an older NBIRTH): the node
          // has been reborn since; ignoring it keeps a live node from being paged.
          ++counters_.stale_deaths;
          return ParseError::None;
        }
      }
      if (!node.alive && node.known) return ParseError::None;  // already down: a duplicate
      node.alive = false;
      node.known = true;
      if (!node.bd_seq) node.bd_seq = d;  // first news of this node: later wills are judged by it
      events.push_back(event(node_id, core::EventKind::Disconnected, core::DisconnectReason::LastWill, retained));
      // Every device of the node is offline with it (Sparkplug 3.0): they become unreachable
      // behind it, one page for the node (core topology).
      for (const auto& dev : node.devices)
        events.push_back(event(dev, core::EventKind::Disconnected, core::DisconnectReason::Unknown, retained));
      node.devices.clear();
      return ParseError::None;
    }
    case MessageType::NDATA:
      if (!node.alive) {
        node.alive = true;
        node_up();
      }
      // Each sign of life of an unborn node may ask (again, once the interval is over: a node
      // that missed or ignored the request is not left unborn for ever).
      maybe_rebirth();
      return ParseError::None;
    case MessageType::DBIRTH:
    case MessageType::DDATA: {
      if (!node.alive) {
        if (node.born && node.dead_ahead) return ParseError::None;  // late data of a dead session
        node.alive = true;
        node_up();
      }
      maybe_rebirth();
      if (t->type == MessageType::DDATA && node.devices.count(device_id) != 0) return ParseError::None;
      node.devices.insert(device_id);
      Parsed p = event(device_id, core::EventKind::Connected, core::DisconnectReason::Unknown, retained);
      device_labels(p);
      events.push_back(std::move(p));
      return ParseError::None;
    }
    case MessageType::DDEATH: {
      if (!node.alive) {
        ++counters_.stale_device_deaths;
        return ParseError::None;
      }
      node.devices.erase(device_id);
      Parsed p = event(device_id, core::EventKind::Disconnected, core::DisconnectReason::Unknown, retained);
      device_labels(p);
      events.push_back(std::move(p));
      return ParseError::None;
    }
    case MessageType::NCMD:
    case MessageType::DCMD:
    case MessageType::STATE:
      break;
  }
  return ParseError::None;
}

}  // namespace presence::ingest::sparkplug
