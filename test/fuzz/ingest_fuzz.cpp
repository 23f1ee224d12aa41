// Fuzz target: topic patterns, topic matching and every payload parser of presence/ingest
// (status, heartbeat, EMQX events, broker-ext boot/heartbeat/client events/alive batches, $SYS
// uptime). All of it arrives from devices and brokers we do not control.
//
// Input: one selector byte, then
//   0..9     payload for the parser of TopicKind(selector) (parsed directly, no topic needed)
//   'p'      <pattern> \n <topic>: compile a pattern of any kind and match a topic against it
//   other    <topic> \n <payload>: parse_message on the default topics (bit 0 = retained)
// Besides "no crash, no UB", it checks the bounds ParseLimits promises for accepted messages.
#include <cstdlib>
#include <string>
#include <vector>

#include "presence/ingest/payload.h"
#include "presence/ingest/topic_pattern.h"
#include "presence/ingest/topics.h"
#include "test/fuzz/fuzz.h"

namespace {

using namespace presence::ingest;

// The default topics (ingest::TopicOptions), compiled by the one topics compiler (topics.h).
const TopicMatcher& default_matcher() {
  static const TopicMatcher matcher = [] {
    TopicMatcher m;
    std::vector<std::string> errors;
    if (!compile_topics(TopicOptions{}, m, errors)) std::abort();
    return m;
  }();
  return matcher;
}

// with_id: the message went through parse_message, which takes the id from the topic (the
// payload parsers alone leave it to their caller).
void check(const Parsed& p, const ParseLimits& limits, bool with_id) {
  if (with_id && (p.what == Parsed::What::DeviceEvent || p.what == Parsed::What::DeviceResync)) {
    if (p.id.empty() || p.id.size() > limits.max_id_bytes) std::abort();
  }
  if (p.labels.size() > limits.max_labels) std::abort();
  for (const auto& [k, v] : p.labels)
    if (k.size() > limits.max_label_key_bytes || v.size() > limits.max_label_value_bytes)
      std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  presence::fuzz::Input in(data, size);
  const std::uint8_t selector = in.byte();
  static const ParseLimits limits;

  if (selector <= static_cast<std::uint8_t>(TopicKind::Ignore)) {
    const std::string_view payload = in.rest();
    Parsed p;
    switch (static_cast<TopicKind>(selector)) {
      case TopicKind::Status: p = parse_status(payload, limits); break;
      case TopicKind::Heartbeat: p = parse_heartbeat(payload, limits); break;
      case TopicKind::EmqxConnected: p = parse_emqx(true, payload, limits); break;
      case TopicKind::EmqxDisconnected: p = parse_emqx(false, payload, limits); break;
      case TopicKind::BrokerExtBoot:
      case TopicKind::BrokerExtHeartbeat: p = parse_broker_ext_boot(payload, limits); break;
      case TopicKind::BrokerExtConnected:
        p = parse_broker_ext_client(true, payload, limits);
        break;
      case TopicKind::BrokerExtDisconnected:
        p = parse_broker_ext_client(false, payload, limits);
        break;
      case TopicKind::BrokerExtAlive: p = parse_broker_ext_alive(payload, limits); break;
      case TopicKind::BrokerExtClients: p = parse_broker_ext_clients(payload, limits); break;
      case TopicKind::Uptime: p = parse_uptime(payload); break;
      case TopicKind::Ignore: break;  // claimed and dropped: no parser
    }
    check(p, limits, false);
    emqx_reason(payload);
    return 0;
  }

  if (selector == 'p') {
    const std::string_view pattern = in.field();
    const std::string_view topic = in.rest();
    for (const auto kind : {TopicKind::Status, TopicKind::BrokerExtBoot}) {
      std::string error;
      const auto p = TopicPattern::compile(kind, pattern, &error);
      if (!p) {
        if (error.empty()) std::abort();  // a refusal always says why
        continue;
      }
      const auto m = p->match(topic);
      // A match's captures are views into the topic itself.
      if (m && !m->id.empty() &&
          (m->id.data() < topic.data() || m->id.data() + m->id.size() > topic.data() + topic.size()))
        std::abort();
    }
    return 0;
  }

  const std::string_view topic = in.field();
  const std::string_view payload = in.rest();
  const Parsed p = parse_message(default_matcher(), topic, payload, (selector & 1) != 0, limits);
  check(p, limits, true);
  BrokerWatch watch;
  if (p.what == Parsed::What::BrokerBoot) watch.on_boot(p.node, p.boot);
  if (p.what == Parsed::What::BrokerUptime) watch.on_uptime(p.node, p.uptime_seconds);
  return 0;
}
