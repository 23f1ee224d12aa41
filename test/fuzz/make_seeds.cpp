// Writes the binary seeds of the snapshot and outbox fuzz targets with the real encoders, so the
// seeds follow the formats when they change. Usage: fuzz_make_seeds <corpus dir> (docs/fuzzing.md).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "presence/alert/outbox.h"
#include "presence/core/engine.h"
#include "presence/core/policy.h"
#include "presence/store/record.h"
#include "presence/store/snapshot.h"
#ifdef PRESENCE_SEEDS_SPARKPLUG
#include "presence/ingest/sparkplug_codec.h"
#endif

namespace fs = std::filesystem;
using namespace presence;

namespace {

void write(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::printf("%s (%zu bytes)\n", p.c_str(), bytes.size());
}

std::string payloads_of(const std::string& file, std::size_t header) {
  std::string out;
  bool first = true;
  store::scan_records(std::string_view(file).substr(header), [&](std::string_view p) {
    if (!first) out += "\xffREC";
    out += p;
    first = false;
  });
  return out;
}

void event(core::Engine& e, core::DeviceIndex d, core::EventKind kind, std::int64_t at) {
  core::Event ev;
  ev.kind = kind;
  ev.device = d;
  ev.source = core::Source::Status;
  ev.reason = core::DisconnectReason::LastWill;
  ev.at = core::mono_ms(at);
  e.on_event(ev);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds <corpus dir>\n");
    return 2;
  }
  const fs::path corpus = argv[1];
  constexpr std::int64_t kNow = 5'000'000;
  store::WallAnchor anchor;
  anchor.wall = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  anchor.mono = core::mono_ms(kNow);

  // Snapshot: three devices (one offline and paged), a silence, the policy's text.
  core::Engine engine;
  core::AlertPolicy policy({}, {}, [&](core::DeviceIndex d) { return std::string(engine.id_of(d)); });
  engine.set_observer(&policy);
  std::vector<core::Transition> ts;
  std::vector<core::AlertIntent> alerts;
  for (int i = 0; i < 3; ++i) {
    const auto d = engine.intern("dev-" + std::to_string(i));
    engine.set_label(d, "site", i == 2 ? "south" : "north");
    event(engine, d, core::EventKind::Connected, kNow - 3'600'000);
  }
  event(engine, 2, core::EventKind::Disconnected, kNow - 1'800'000);
  for (std::int64_t t = kNow - 3'600'000; t <= kNow; t += 10'000) {
    engine.tick(core::mono_ms(t));
    engine.flush();
    engine.drain(ts);
    policy.drain_alerts(alerts);
  }
  core::Silence silence;
  silence.match = {{"site", "north"}};
  silence.starts_at = core::mono_ms(kNow);
  silence.ends_at = core::mono_ms(kNow + 3'600'000);
  silence.comment = "maintenance";
  policy.add_silence(silence);
  const std::string snap = store::encode_snapshot(engine.snapshot(), policy.serialize(), anchor);
  write(corpus / "snapshot" / "seed-file", snap);
  write(corpus / "snapshot" / "seed-payload", payloads_of(snap, 12));

  // Outbox: entries for two sinks, one settled.
  const fs::path dir = fs::temp_directory_path() / ("presence-seeds-" + std::to_string(getpid()));
  fs::create_directories(dir);
  alert::OutboxConfig config;
  config.path = (dir / "outbox.log").string();
  config.fsync = false;
  {
    alert::Outbox outbox(config);
    std::string error;
    if (!outbox.open({"pagerduty", "slack"}, &error)) return 1;
    std::vector<alert::OutboxEntry> entries;
    for (const auto& a : alerts) {
      for (const char* sink : {"pagerduty", "slack"}) {
        alert::OutboxEntry e;
        e.sink = sink;
        e.intent = a;
        e.wall_ms = 1'800'000'000'000;
        entries.push_back(e);
      }
    }
    if (entries.empty()) {
      alert::OutboxEntry e;
      e.sink = "pagerduty";
      e.intent.dedup_key = "presenced/device/dev-2";
      e.intent.summary = "dev-2 offline";
      e.intent.component = "dev-2";
      e.intent.details = {{"site", "south"}};
      entries.push_back(e);
    }
    outbox.append(entries);
    outbox.settle({entries.front().seq}, alert::Disposition::Delivered);
  }
  std::ifstream in(config.path, std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write(corpus / "outbox" / "seed-file", file);
  write(corpus / "outbox" / "seed-records", payloads_of(file, 12));
  fs::remove_all(dir);
#ifdef PRESENCE_SEEDS_SPARKPLUG
  // Sparkplug B (test/fuzz/sparkplug_fuzz.cpp): raw payloads ('d') and a message sequence: node
  // e0 born (bdSeq 255), a device born, a stale will, the wrap to 0, the will of 0, a STATE.
  namespace sp = ingest::sparkplug;
  auto payload = [](std::optional<std::uint64_t> bd, std::optional<std::uint64_t> seq, bool rebirth = false) {
    sp::PayloadSpec s;
    s.timestamp = 1700000000000;
    s.bd_seq = bd;
    s.seq = seq;
    s.rebirth = rebirth;
    if (!bd) s.values = {{"temperature", 21.5}};
    return sp::encode(s);
  };
  write(corpus / "sparkplug" / "seed-birth", "d" + payload(255, 0));
  write(corpus / "sparkplug" / "seed-rebirth", "d" + payload(std::nullopt, std::nullopt, true));
  write(corpus / "sparkplug" / "seed-state", "d" + sp::encode_state({false, 1700000000000}));
  // flags: bit 0 retained, bits 1-3 type (0 NBIRTH, 1 NDEATH, 2 DBIRTH, 3 DDEATH, 4 NDATA), bits 4-5
  // node, bit 6 device, bit 7 STATE.
  std::string seq = "s";
  auto msg = [&seq](std::uint8_t flags, const std::string& p) {
    seq += static_cast<char>(flags);
    seq += static_cast<char>(p.size() > 255 ? 255 : p.size());
    seq += p.substr(0, 255);
  };
  msg(0x00, payload(255, 0));                      // NBIRTH e0 bdSeq 255
  msg(0x40 | (2 << 1), payload(std::nullopt, 1));  // DBIRTH e0/d0
  msg(1 << 1, payload(254, std::nullopt));         // stale NDEATH 254
  msg(0x00, payload(0, 0));                        // NBIRTH bdSeq 0 (wrap)
  msg(1 << 1, payload(0, std::nullopt));           // NDEATH 0
  msg(0x80, sp::encode_state({true, 1700000000000}));
  msg(0x10 | (4 << 1), payload(std::nullopt, 3));  // NDATA e1: a node whose birth was missed
  write(corpus / "sparkplug" / "seed-sequence", seq);
#endif
  return 0;
}
