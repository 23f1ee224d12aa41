#include "presence/store/snapshot.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "presence/store/codec.h"
#include "presence/store/file_io.h"
#include "presence/store/record.h"
#include "test/support/process.h"

using namespace presence;
using namespace presence::store;
using namespace std::chrono_literals;

namespace {

WallAnchor anchor(std::int64_t wall_ms, std::int64_t mono_ms) {
  return WallAnchor{std::chrono::system_clock::time_point{std::chrono::milliseconds{wall_ms}},
                    core::mono_ms(mono_ms)};
}

std::vector<core::DeviceSnapshot> sample() {
  core::DeviceSnapshot a;
  a.id = "dev-1";
  a.state = core::State::Offline;
  a.since = core::mono_ms(10'000);
  a.labels = {{"site", "lab"}, {"fw", "1.2.3"}};
  core::DeviceSnapshot b;
  b.id = std::string(256, 'z');  // the ingest limit: kept
  b.state = core::State::Flapping;
  b.since = core::mono_ms(-5);
  return {a, b};
}

struct Logs {
  std::vector<std::string> lines;
  presence::common::LogFn fn() {
    return [this](std::string_view l) { lines.emplace_back(l); };
  }
};

}  // namespace

TEST_CASE("WallAnchor converts steady time across a restart") {
  // Before the restart: mono 100000 is wall 1'700'000'000'000.
  const auto before = anchor(1'700'000'000'000, 100'000);
  CHECK(before.to_wall_ms(core::mono_ms(90'000)) == 1'699'999'990'000);
  // After the restart steady time restarted near zero; the same wall instant is 10 s before now.
  const auto after = anchor(1'700'000'060'000, 500);
  CHECK(core::to_ms(after.to_mono(1'699'999'990'000)) == 500 - 70'000);
}

TEST_CASE("snapshot round-trips devices, labels, times and the incident blob") {
  const auto save_anchor = anchor(1'700'000'000'000, 20'000);
  const std::string blob("incidents\0binary\xff", 17);
  const std::string file = encode_snapshot(sample(), blob, save_anchor);

  // Reloaded one minute later with steady time restarted at 1000.
  const auto load_anchor = anchor(1'700'000'060'000, 1'000);
  const LoadResult r = decode_snapshot(file, load_anchor);
  REQUIRE(r.status == LoadStatus::Ok);
  REQUIRE(r.snapshot.devices.size() == 2);
  const auto& a = r.snapshot.devices[0];
  CHECK(a.id == "dev-1");
  CHECK(a.state == core::State::Offline);
  // since was 10 s before the save anchor (70 s before the load anchor).
  CHECK(core::to_ms(a.since) == 1'000 - 70'000);
  REQUIRE(a.labels.size() == 2);
  CHECK(a.labels[1].first == "fw");
  CHECK(a.labels[1].second == "1.2.3");
  CHECK(r.snapshot.devices[1].id == std::string(256, 'z'));
  CHECK(r.snapshot.devices[1].state == core::State::Flapping);
  CHECK(r.snapshot.incidents == blob);
  CHECK(r.snapshot.saved_at_ms == 1'700'000'000'000);
}

TEST_CASE("every flipped byte and every truncation of a snapshot is rejected, never crashes") {
  const auto a = anchor(1'700'000'000'000, 0);
  const std::string file = encode_snapshot(sample(), "blob", a);
  for (std::size_t i = 0; i < file.size(); ++i) {
    std::string bad = file;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    INFO("byte " << i);
    const auto r = decode_snapshot(bad, a);
    CHECK(r.status != LoadStatus::Ok);
    CHECK(r.snapshot.devices.empty());
  }
  for (std::size_t cut = 0; cut < file.size(); ++cut) {
    INFO("cut " << cut);
    CHECK(decode_snapshot(std::string_view(file).substr(0, cut), a).status != LoadStatus::Ok);
  }
}

TEST_CASE("a newer version is reported as unsupported") {
  const auto a = anchor(0, 0);
  std::string file = encode_snapshot({}, "", a);
  file[8] = 3;  // version u32 little-endian follows the 8-byte magic
  const auto r = decode_snapshot(file, a);
  CHECK(r.status == LoadStatus::UnsupportedVersion);
  CHECK(r.error.find("version 3") != std::string::npos);
}

TEST_CASE("SnapshotStore: save, load, missing and corrupt files are logged and counted") {
  presence::test::TempDir dir;
  Logs logs;
  SnapshotStore store(dir.file("state.snap"), logs.fn());
  const auto a = anchor(1'700'000'000'000, 0);

  auto r = store.load(a);
  CHECK(r.status == LoadStatus::Missing);
  CHECK(store.stats().load_missing == 1);

  REQUIRE(store.save(sample(), "inc", a));
  r = store.load(a);
  REQUIRE(r.status == LoadStatus::Ok);
  CHECK(r.snapshot.devices.size() == 2);
  CHECK(store.stats().saves == 1);
  CHECK(store.stats().last_bytes > 0);

  // Corrupt the file on disk: start empty, count, log, keep the evidence aside.
  auto read = read_file(store.path());
  REQUIRE(read.ok());
  REQUIRE(read.value.has_value());
  std::string bytes = *read.value;
  bytes[bytes.size() - 3] ^= 0x40;
  REQUIRE(write_file_atomic(store.path(), bytes).ok());
  logs.lines.clear();
  r = store.load(a);
  CHECK(r.status == LoadStatus::Corrupt);
  CHECK(r.snapshot.devices.empty());
  CHECK(store.stats().load_corrupt == 1);
  REQUIRE(logs.lines.size() == 1);
  CHECK(logs.lines[0].find("corrupt") != std::string::npos);
  CHECK(std::filesystem::exists(store.path() + ".corrupt"));
  CHECK_FALSE(std::filesystem::exists(store.path()));

  // A later save works again.
  REQUIRE(store.save(sample(), "inc", a));
  CHECK(store.load(a).status == LoadStatus::Ok);

  // A save into a missing directory fails cleanly and is counted.
  SnapshotStore nowhere(dir.file("no/dir/state.snap"), logs.fn());
  CHECK_FALSE(nowhere.save(sample(), "", a));
  CHECK(nowhere.stats().save_failures == 1);
}

// Issue 19 item 10: a crafted snapshot is validated on load as a live message is on ingest.
namespace {
// A version-1 snapshot (no outbox_seq) with one device, built field by field like an old file.
std::string v1_file(const std::string& id, std::int64_t since_wall,
                    const std::vector<std::pair<std::string, std::string>>& labels = {},
                    int copies = 1) {
  Writer w;
  w.i64(1'700'000'000'000);
  w.u32(static_cast<std::uint32_t>(copies));
  for (int c = 0; c < copies; ++c) {
    w.str(id);
    w.u8(static_cast<std::uint8_t>(core::State::Offline));
    w.i64(since_wall);
    w.u32(static_cast<std::uint32_t>(labels.size()));
    for (const auto& [k, v] : labels) {
      w.str(k);
      w.str(v);
    }
  }
  w.str("blob");
  std::string file("PRSNAPSH", 8);
  Writer version;
  version.u32(1);
  file += version.data();
  append_record(file, w.data());
  return file;
}
}  // namespace

TEST_CASE("issue 19/10: a version 1 snapshot still loads (outbox_seq 0); version 2 keeps outbox_seq") {
  const auto a = anchor(1'700'000'060'000, 1'000);
  const auto r1 = decode_snapshot(v1_file("dev-1", 1'700'000'000'000), a);
  REQUIRE(r1.status == LoadStatus::Ok);
  CHECK(r1.snapshot.devices.size() == 1);
  CHECK(r1.snapshot.outbox_seq == 0);
  CHECK(r1.snapshot.incidents == "blob");
  CHECK_FALSE(r1.repairs.any());
  const auto r2 = decode_snapshot(encode_snapshot(sample(), "b", a, 12345), a);
  REQUIRE(r2.status == LoadStatus::Ok);
  CHECK(r2.snapshot.outbox_seq == 12345);
}

TEST_CASE("issue 19/10: since of INT64_MIN/MAX, before 2000 or after the load is clamped to now") {
  const std::int64_t now_wall = 1'700'000'060'000;
  const auto a = anchor(now_wall, 1'000);
  for (std::int64_t since : {std::numeric_limits<std::int64_t>::min(),
                             std::numeric_limits<std::int64_t>::max(), std::int64_t{-1},
                             std::int64_t{946'684'799'999}, now_wall + 1}) {
    CAPTURE(since);
    const auto r = decode_snapshot(v1_file("dev-1", since), a);
    REQUIRE(r.status == LoadStatus::Ok);
    REQUIRE(r.snapshot.devices.size() == 1);
    CHECK(core::to_ms(r.snapshot.devices[0].since) == 1'000);
    CHECK(r.repairs.times_clamped == 1);
  }
  for (std::int64_t since : {std::int64_t{946'684'800'000}, now_wall}) {  // the bounds: kept
    CAPTURE(since);
    const auto r = decode_snapshot(v1_file("dev-1", since), a);
    REQUIRE(r.snapshot.devices.size() == 1);
    CHECK(core::to_ms(r.snapshot.devices[0].since) == 1'000 - (now_wall - since));
    CHECK(r.repairs.times_clamped == 0);
  }
}

TEST_CASE("issue 19/10: ids and labels over the ingest limits, empty and duplicate ids are dropped") {
  const auto a = anchor(1'700'000'060'000, 1'000);
  const std::int64_t t = 1'700'000'000'000;
  CHECK(decode_snapshot(v1_file(std::string(1 << 20, 'x'), t), a).snapshot.devices.empty());
  CHECK(decode_snapshot(v1_file(std::string(257, 'x'), t), a).repairs.devices_dropped == 1);
  CHECK(decode_snapshot(v1_file(std::string(256, 'x'), t), a).snapshot.devices.size() == 1);
  CHECK(decode_snapshot(v1_file("", t), a).repairs.devices_dropped == 1);
  const auto dup = decode_snapshot(v1_file("d", t, {}, 3), a);
  CHECK(dup.snapshot.devices.size() == 1);
  CHECK(dup.repairs.devices_dropped == 2);
  std::vector<std::pair<std::string, std::string>> labels{
      {"site", "lab"}, {std::string(65, 'k'), "v"}, {"fw", std::string(257, 'v')}, {"", "v"}};
  for (int i = 0; i < 40; ++i) labels.emplace_back("l" + std::to_string(i), "v");
  const auto r = decode_snapshot(v1_file("d", t, labels), a);
  REQUIRE(r.snapshot.devices.size() == 1);
  CHECK(r.snapshot.devices[0].labels.size() == 32);
  CHECK(r.snapshot.devices[0].labels[0].first == "site");
  CHECK(r.repairs.labels_dropped == 3 + 9);
}

TEST_CASE("issue 19/6: save failures are logged once (not per save), recovery is logged, failing() tracks it") {
  presence::test::TempDir dir;
  Logs logs;
  SnapshotStore store(dir.file("missing-dir/snapshot.bin"), logs.fn());
  const auto a = anchor(1'700'000'000'000, 0);
  for (int i = 0; i < 5; ++i) CHECK_FALSE(store.save(sample(), "b", a));
  CHECK(store.failing());
  CHECK(store.stats().save_failures == 5);
  REQUIRE(logs.lines.size() == 1);
  CHECK(logs.lines[0].find("cannot save") != std::string::npos);
  CHECK_FALSE(store.last_error().empty());
  std::filesystem::create_directories(dir.file("missing-dir"));
  CHECK(store.save(sample(), "b", a));
  CHECK_FALSE(store.failing());
  REQUIRE(logs.lines.size() == 2);
  CHECK(logs.lines[1].find("saving again") != std::string::npos);
}

TEST_CASE("issue 16: duplicate ids anywhere in the file: the first of each is kept, file order kept") {
  // decode_snapshot finds duplicates by sorting (hash, position) pairs (a set of 1 M strings was
  // most of a 1 M-device restart): the first occurrence wins wherever the copies are.
  const auto a = anchor(1'700'000'060'000, 1'000);
  std::vector<core::DeviceSnapshot> in;
  const char* ids[] = {"a", "b", "a", "c", "b", "b", "d", "a"};
  for (std::size_t i = 0; i < std::size(ids); ++i) {
    core::DeviceSnapshot d;
    d.id = ids[i];
    d.state = i == 0 ? core::State::Offline : core::State::Online;
    d.since = core::MonoTime{std::chrono::milliseconds(500)};
    d.labels = {{"n", std::to_string(i)}};
    in.push_back(d);
  }
  const auto r = decode_snapshot(encode_snapshot(in, "", a), a);
  REQUIRE(r.status == LoadStatus::Ok);
  CHECK(r.repairs.devices_dropped == 4);
  REQUIRE(r.snapshot.devices.size() == 4);
  const std::vector<std::string> want_ids{"a", "b", "c", "d"};
  const std::vector<std::string> want_n{"0", "1", "3", "6"};
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(r.snapshot.devices[i].id == want_ids[i]);
    REQUIRE(r.snapshot.devices[i].labels.size() == 1);
    CHECK(r.snapshot.devices[i].labels[0].second == want_n[i]);
  }
  CHECK(r.snapshot.devices[0].state == core::State::Offline);
  // Many distinct ids, none dropped.
  std::vector<core::DeviceSnapshot> many(5000);
  for (std::size_t i = 0; i < many.size(); ++i) {
    many[i].id = "dev-" + std::to_string(i);
    many[i].since = core::MonoTime{std::chrono::milliseconds(500)};
  }
  const auto m = decode_snapshot(encode_snapshot(many, "", a), a);
  CHECK(m.repairs.devices_dropped == 0);
  REQUIRE(m.snapshot.devices.size() == many.size());
  CHECK(m.snapshot.devices[4321].id == "dev-4321");
}

TEST_CASE("issue 16: a save records its size and how long encode, write and fsync took") {
  presence::test::TempDir dir;
  SnapshotStore store(dir.file("snapshot.bin"));
  CHECK(store.stats().last_write_us == 0);
  REQUIRE(store.save(sample(), "b", anchor(1'700'000'000'000, 0)));
  CHECK(store.stats().last_write_us > 0);
  CHECK(store.stats().last_bytes == std::filesystem::file_size(dir.file("snapshot.bin")));
}

TEST_CASE("issue 16: a snapshot over the outbox's 64 MiB record bound is read back") {
  // 1 M devices with ~40 B of labels each make a snapshot over 64 MiB; it used to be written and
  // then read back as corrupt (started empty). 7,000 devices with 32 long labels: ~68 MiB.
  const auto a = anchor(1'700'000'060'000, 1'000);
  std::vector<core::DeviceSnapshot> devices(7000);
  for (std::size_t i = 0; i < devices.size(); ++i) {
    devices[i].id = "dev-" + std::to_string(i);
    devices[i].state = core::State::Online;
    devices[i].since = core::MonoTime{std::chrono::milliseconds(500)};
    for (int k = 0; k < 32; ++k)
      devices[i].labels.emplace_back("label-key-" + std::to_string(k) + std::string(40, 'k'),
                                     std::string(256, 'v'));
  }
  const std::string file = encode_snapshot(devices, "", a);
  REQUIRE(file.size() > kMaxRecordPayload);
  const auto r = decode_snapshot(file, a);
  CHECK(r.status == LoadStatus::Ok);
  CHECK(r.snapshot.devices.size() == devices.size());
  CHECK(r.repairs.labels_dropped == 0);
}
