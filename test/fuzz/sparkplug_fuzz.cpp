// Fuzz target: Sparkplug B 3.0 (issue 15). The protobuf decoder, the topic parser, the STATE JSON
// parser, and the edge-node tracker fed a sequence of messages (so bdSeq, births and deaths meet
// in any order). Every byte of it comes from edge nodes and hosts we do not control.
//
// Input: one selector byte, then
//   'd'     raw bytes: decode(), parse_state(), parse_topic() on them
//   other   messages until the input ends, each: a flags byte (bit 0 retained, bits 1-3 the
//           message type, bits 4-5 the edge node, bit 6 a device, bit 7 the STATE topic), a
//           length byte L, then L payload bytes
// Besides "no crash, no UB, no leak", it checks the tracker's promises: a refusal says why and
// emits nothing, accepted ids stay within max_id_bytes, an NDEATH's node comes before its devices.
#include <cstdlib>
#include <string>
#include <vector>

#include "presence/ingest/sparkplug.h"
#include "test/fuzz/fuzz.h"

namespace {

using namespace presence::ingest;
using namespace presence::ingest::sparkplug;

constexpr const char* kTypes[] = {"NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA", "DDATA", "NCMD", "DCMD"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  presence::fuzz::Input in(data, size);
  const std::uint8_t selector = in.byte();
  if (selector == 'd') {
    const std::string_view raw = in.rest();
    Payload p;
    std::string error;
    if (!decode(raw, p, error) && error.empty()) std::abort();
    if (p.bd_seq && *p.bd_seq > 255) std::abort();
    State st;
    if (!parse_state(raw, st, error) && error.empty()) std::abort();
    (void)parse_topic(raw);
    return 0;
  }
  Options options;
  options.primary_host = "host";
  options.rebirth = (selector & 1) != 0;
  options.max_nodes = 3;
  ParseLimits limits;
  Tracker tracker(options, limits);
  std::vector<Parsed> events;
  std::vector<Command> commands;
  std::int64_t t = 0;
  while (!in.empty()) {
    const std::uint8_t flags = in.byte();
    const std::size_t len = in.byte();
    std::string payload;
    for (std::size_t i = 0; i < len && !in.empty(); ++i) payload.push_back(static_cast<char>(in.byte()));
    std::string topic;
    const std::string node = "e" + std::to_string((flags >> 4) & 3);
    if ((flags & 0x80) != 0) {
      topic = "spBv1.0/STATE/host";
    } else {
      topic = std::string("spBv1.0/g/") + kTypes[(flags >> 1) & 7] + "/" + node;
      if ((flags & 0x40) != 0) topic += "/d" + std::to_string(flags & 1);
    }
    events.clear();
    commands.clear();
    std::string detail;
    t += 1000;
    const ParseError e = tracker.on_message(topic, payload, (flags & 1) != 0, presence::core::mono_ms(t),
                                            1700000000000ULL, events, commands, &detail);
    if (e != ParseError::None && (detail.empty() || !events.empty())) std::abort();
    for (const auto& p : events)
      if (p.id.empty() || p.id.size() > limits.max_id_bytes) std::abort();
    // NDEATH: the node first, then its devices.
    if (!events.empty() && topic.find("/NDEATH/") != std::string::npos && events.front().id != "g/" + node)
      std::abort();
    for (const auto& c : commands)
      if (c.topic.rfind("spBv1.0/g/NCMD/", 0) != 0) std::abort();
  }
  return 0;
}
