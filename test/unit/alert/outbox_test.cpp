#include "presence/alert/outbox.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "presence/store/file_io.h"
#include "presence/store/record.h"
#include "test/support/process.h"

using namespace presence;
using namespace presence::alert;
using Action = core::AlertIntent::Action;

namespace {

// The file's bytes (false when missing or unreadable).
bool read_bytes(const std::string& path, std::string& bytes) {
  auto read = store::read_file(path);
  if (!read.ok() || !read.value) return false;
  bytes = std::move(*read.value);
  return true;
}

struct Logs {
  std::vector<std::string> lines;
  common::LogFn fn() {
    return [this](std::string_view l) { lines.emplace_back(l); };
  }
  bool any(const std::string& needle) const {
    for (const auto& l : lines) {
      if (l.find(needle) != std::string::npos) return true;
    }
    return false;
  }
};

OutboxEntry make(const std::string& sink, const std::string& key, Action a = Action::Trigger,
                 std::int64_t wall = 1000) {
  OutboxEntry e;
  e.sink = sink;
  e.wall_ms = wall;
  e.intent.action = a;
  e.intent.dedup_key = key;
  e.intent.summary = "summary of " + key;
  e.intent.details = {{"k", "v"}};
  e.intent.at = core::mono_ms(77);
  return e;
}

std::vector<std::string> keys(const std::vector<OutboxEntry>& es) {
  std::vector<std::string> out;
  for (const auto& e : es) {
    out.push_back(e.intent.dedup_key + (e.intent.action == Action::Resolve ? "-" : "+"));
  }
  return out;
}

std::vector<std::uint64_t> seqs(const std::vector<OutboxEntry>& es) {
  std::vector<std::uint64_t> out;
  for (const auto& e : es) out.push_back(e.seq);
  return out;
}

struct Fixture {
  presence::test::TempDir dir;
  Logs logs;
  OutboxConfig config() {
    OutboxConfig c;
    c.path = dir.file("outbox.log");
    c.log = logs.fn();
    c.compact_min_bytes = 0;
    return c;
  }
};

}  // namespace

TEST_CASE_FIXTURE(Fixture, "entries survive a reopen; settled ones do not come back") {
  {
    Outbox box(config());
    REQUIRE(box.open({"pd", "slack"}, nullptr));
    std::vector<OutboxEntry> es{make("pd", "a"), make("slack", "a"), make("pd", "b")};
    REQUIRE(box.append(es));
    CHECK(es[0].seq == 1);
    CHECK(es[2].seq == 3);
    CHECK(box.depth("pd") == 2);
    auto head = box.take("pd", 1);
    REQUIRE(head.size() == 1);
    CHECK(head[0].intent.dedup_key == "a");
    REQUIRE(box.settle(seqs(head), Disposition::Delivered));
    CHECK(box.depth("pd") == 1);
  }  // no clean shutdown step exists: destruction is a crash as far as the file is concerned
  Outbox box(config());
  REQUIRE(box.open({"pd", "slack"}, nullptr));
  CHECK(box.stats().loaded == 2);
  auto pd = box.take("pd", 10);
  REQUIRE(pd.size() == 1);
  CHECK(pd[0].seq == 3);
  CHECK(pd[0].intent.dedup_key == "b");
  CHECK(pd[0].intent.summary == "summary of b");
  CHECK(pd[0].intent.details.size() == 1);
  CHECK(core::to_ms(pd[0].intent.at) == 77);
  CHECK(box.take("slack", 10).size() == 1);
  // New seqs continue after the highest ever written.
  std::vector<OutboxEntry> more{make("pd", "c")};
  REQUIRE(box.append(more));
  CHECK(more[0].seq == 4);
  CHECK(logs.lines.empty());
}

TEST_CASE_FIXTURE(Fixture, "take returns the head in seq order; release keeps entries queued") {
  Outbox box(config());
  REQUIRE(box.open({"pd"}, nullptr));
  std::vector<OutboxEntry> es{make("pd", "a"), make("pd", "a", Action::Resolve), make("pd", "b")};
  REQUIRE(box.append(es));
  auto batch = box.take("pd", 2);
  CHECK(keys(batch) == std::vector<std::string>{"a+", "a-"});
  box.release(seqs(batch));
  CHECK(box.depth("pd") == 3);
  CHECK(keys(box.take("pd", 5)) == std::vector<std::string>{"a+", "a-", "b+"});
  CHECK(box.take("nosuch", 5).empty());
}

TEST_CASE_FIXTURE(Fixture, "holds: a live entry of that sink, key and action within the window") {
  Outbox box(config());
  REQUIRE(box.open({"pd", "slack"}, nullptr));
  std::vector<OutboxEntry> es{make("pd", "a", Action::Trigger, 10000)};
  REQUIRE(box.append(es));
  CHECK(box.holds("pd", "a", Action::Trigger, 10000, 2000));
  CHECK(box.holds("pd", "a", Action::Trigger, 12000, 2000));         // T
  CHECK_FALSE(box.holds("pd", "a", Action::Trigger, 12001, 2000));   // T+1
  CHECK(box.holds("pd", "a", Action::Trigger, 8000, 2000));
  CHECK_FALSE(box.holds("pd", "a", Action::Trigger, 7999, 2000));
  CHECK_FALSE(box.holds("pd", "a", Action::Resolve, 10000, 2000));
  CHECK_FALSE(box.holds("pd", "b", Action::Trigger, 10000, 2000));
  CHECK_FALSE(box.holds("slack", "a", Action::Trigger, 10000, 2000));
  CHECK_FALSE(box.holds("nosuch", "a", Action::Trigger, 10000, 2000));
  // In flight still counts (it is ours to send); settled does not.
  auto batch = box.take("pd", 1);
  CHECK(box.holds("pd", "a", Action::Trigger, 10000, 2000));
  REQUIRE(box.settle(seqs(batch), Disposition::Delivered));
  CHECK_FALSE(box.holds("pd", "a", Action::Trigger, 10000, 2000));
}

TEST_CASE_FIXTURE(Fixture, "later: the live entries of that sink and key decided after a time, oldest first") {
  Outbox box(config());
  REQUIRE(box.open({"pd", "slack"}, nullptr));
  std::vector<OutboxEntry> es{make("pd", "a", Action::Trigger, 10000),
                              make("pd", "a", Action::Resolve, 14000),
                              make("pd", "b", Action::Resolve, 15000),
                              make("slack", "a", Action::Resolve, 16000)};
  REQUIRE(box.append(es));
  using Later = std::vector<std::pair<Action, std::int64_t>>;
  CHECK(box.later("pd", "a", 10000) == Later{{Action::Resolve, 14000}});
  CHECK(box.later("pd", "a", 13999) == Later{{Action::Resolve, 14000}});  // T-1
  CHECK(box.later("pd", "a", 14000).empty());                              // T: strictly after
  CHECK(box.later("pd", "a", 9999) == Later{{Action::Trigger, 10000}, {Action::Resolve, 14000}});
  CHECK(box.later("nosuch", "a", 0).empty());
  // Settled entries are not ours to send any more.
  auto batch = box.take("pd", 2);
  REQUIRE(box.settle(seqs(batch), Disposition::Delivered));
  CHECK(box.later("pd", "a", 0).empty());
}

TEST_CASE_FIXTURE(Fixture, "unsent: every live entry of every sink, in flight included, settled not") {
  Outbox box(config());
  REQUIRE(box.open({"pd", "slack"}, nullptr));
  std::vector<OutboxEntry> es{make("pd", "a"), make("pd", "a", Action::Resolve, 2000),
                              make("slack", "b")};
  REQUIRE(box.append(es));
  CHECK(keys(box.unsent()) == std::vector<std::string>{"a+", "a-", "b+"});
  auto batch = box.take("pd", 1);  // in flight: still unsent
  CHECK(box.unsent().size() == 3);
  REQUIRE(box.settle(seqs(batch), Disposition::Delivered));
  CHECK(keys(box.unsent()) == std::vector<std::string>{"a-", "b+"});
}

TEST_CASE_FIXTURE(Fixture, "a corrupt record is skipped, logged once, and the file is rewritten") {
  {
    Outbox box(config());
    REQUIRE(box.open({"pd"}, nullptr));
    for (int k = 0; k < 3; ++k) {
      std::vector<OutboxEntry> one{make("pd", "key" + std::to_string(k))};
      REQUIRE(box.append(one));
    }
  }
  // Flip one byte inside the second entry's record.
  std::string bytes;
  REQUIRE(read_bytes(config().path, bytes));
  const auto second = bytes.find("summary of key1");
  REQUIRE(second != std::string::npos);
  bytes[second] ^= 0x01;
  REQUIRE(store::write_file_atomic(config().path, bytes).ok());

  {
    Outbox box(config());
    REQUIRE(box.open({"pd"}, nullptr));
    CHECK(box.stats().corrupt_records == 1);
    CHECK(box.stats().compactions == 1);
    CHECK(keys(box.take("pd", 10)) == std::vector<std::string>{"key0+", "key2+"});
    CHECK(logs.any("corrupt"));
  }
  logs.lines.clear();
  Outbox box(config());
  REQUIRE(box.open({"pd"}, nullptr));
  CHECK(box.stats().corrupt_records == 0);  // reported once, not on every start
  CHECK(box.depth("pd") == 2);
  CHECK(logs.lines.empty());
}

TEST_CASE_FIXTURE(Fixture, "a torn tail (crash mid-append) loses only the torn entry") {
  {
    Outbox box(config());
    REQUIRE(box.open({"pd"}, nullptr));
    std::vector<OutboxEntry> es{make("pd", "a"), make("pd", "b")};
    REQUIRE(box.append(es));
  }
  std::string bytes;
  REQUIRE(read_bytes(config().path, bytes));
  bytes.resize(bytes.size() - 5);
  REQUIRE(store::write_file_atomic(config().path, bytes).ok());
  Outbox box(config());
  REQUIRE(box.open({"pd"}, nullptr));
  CHECK(box.stats().truncated_tails == 1);
  CHECK(keys(box.take("pd", 10)) == std::vector<std::string>{"a+"});
  // Appending after recovery yields a clean file.
  std::vector<OutboxEntry> es{make("pd", "c")};
  REQUIRE(box.append(es));
  Outbox again(config());
  REQUIRE(again.open({"pd"}, nullptr));
  CHECK(again.stats().truncated_tails == 0);
  CHECK(again.depth("pd") == 2);
}

TEST_CASE_FIXTURE(Fixture, "garbage file, damaged header and a newer version never stop start-up") {
  REQUIRE(store::write_file_atomic(config().path, std::string(5000, '\x07')).ok());
  {
    Outbox box(config());
    REQUIRE(box.open({"pd"}, nullptr));
    CHECK(box.depth("pd") == 0);
    CHECK(box.stats().corrupt_records >= 1);
    std::vector<OutboxEntry> es{make("pd", "a")};
    REQUIRE(box.append(es));
  }
  // Damage the header only: records are still found.
  std::string bytes;
  REQUIRE(read_bytes(config().path, bytes));
  bytes[0] = 'X';
  REQUIRE(store::write_file_atomic(config().path, bytes).ok());
  {
    Outbox box(config());
    REQUIRE(box.open({"pd"}, nullptr));
    CHECK(box.depth("pd") == 1);
  }
  // A version this build does not know is moved aside.
  REQUIRE(read_bytes(config().path, bytes));
  bytes[8] = 9;
  REQUIRE(store::write_file_atomic(config().path, bytes).ok());
  Outbox box(config());
  REQUIRE(box.open({"pd"}, nullptr));
  CHECK(box.depth("pd") == 0);
  CHECK(std::filesystem::exists(config().path + ".v9"));
  CHECK(logs.any("version 9"));
}

TEST_CASE_FIXTURE(Fixture, "a compaction temp file left by a crash is ignored and replaced") {
  {
    Outbox box(config());
    REQUIRE(box.open({"pd"}, nullptr));
    std::vector<OutboxEntry> es{make("pd", "a")};
    REQUIRE(box.append(es));
  }
  REQUIRE(store::write_file_atomic(config().path + ".tmp.tmp", "x").ok());
  std::string half(100, '\x01');
  REQUIRE(store::write_file_atomic(config().path + ".tmp", half).ok());
  Outbox box(config());
  REQUIRE(box.open({"pd"}, nullptr));
  CHECK(box.depth("pd") == 1);
  REQUIRE(box.compact(nullptr));
  CHECK_FALSE(std::filesystem::exists(config().path + ".tmp"));
  Outbox again(config());
  REQUIRE(again.open({"pd"}, nullptr));
  CHECK(keys(again.take("pd", 10)) == std::vector<std::string>{"a+"});
}

TEST_CASE_FIXTURE(Fixture, "an unwritable path is an error, not a crash") {
  OutboxConfig c = config();
  c.path = dir.file("no/such/dir/outbox.log");
  Outbox box(c);
  std::string error;
  CHECK_FALSE(box.open({"pd"}, &error));
  CHECK_FALSE(error.empty());
}

TEST_CASE_FIXTURE(Fixture, "entries for a sink that is no longer configured are dropped, logged") {
  {
    Outbox box(config());
    REQUIRE(box.open({"pd", "old"}, nullptr));
    std::vector<OutboxEntry> es{make("pd", "a"), make("old", "a"), make("old", "b")};
    REQUIRE(box.append(es));
  }
  Outbox box(config());
  REQUIRE(box.open({"pd"}, nullptr));
  CHECK(box.stats().orphaned == 2);
  CHECK(box.depth("pd") == 1);
  CHECK(logs.any("'old'"));
}

TEST_CASE_FIXTURE(Fixture,
                  "compaction keeps live entries and seq order when settled ones dominate") {
  OutboxConfig c = config();
  c.compact_min_bytes = 2000;
  Outbox box(c);
  REQUIRE(box.open({"pd"}, nullptr));
  const auto base_compactions = box.stats().compactions;  // creating the file writes it once
  std::uint64_t last_seq = 0;
  for (int k = 0; k < 40; ++k) {
    std::vector<OutboxEntry> es{make("pd", "k" + std::to_string(k))};
    REQUIRE(box.append(es));
    last_seq = es[0].seq;
    if (k % 4 != 0) {  // settle three of every four
      REQUIRE(box.settle({es[0].seq}, Disposition::Delivered));
    }
  }
  const auto st = box.stats();
  CHECK(st.compactions > base_compactions);
  CHECK(st.depth == 10);
  CHECK(st.file_records <= 2 * st.depth + 1 + 8);  // stays compact-ish after the last rewrite
  // Reopen: same live entries, in order, and seq keeps going up.
  Outbox again(c);
  REQUIRE(again.open({"pd"}, nullptr));
  const auto live = again.take("pd", 100);
  REQUIRE(live.size() == 10);
  for (std::size_t k = 0; k < live.size(); ++k)
    CHECK(live[k].intent.dedup_key == "k" + std::to_string(4 * k));
  std::vector<OutboxEntry> es{make("pd", "next")};
  REQUIRE(again.append(es));
  CHECK(es[0].seq == last_seq + 1);
}

TEST_CASE_FIXTURE(Fixture, "compaction with everything settled still keeps seq monotonic") {
  Outbox box(config());
  REQUIRE(box.open({"pd"}, nullptr));
  std::vector<OutboxEntry> es{make("pd", "a"), make("pd", "b")};
  REQUIRE(box.append(es));
  REQUIRE(box.settle(seqs(es), Disposition::Delivered));
  REQUIRE(box.compact(nullptr));
  Outbox again(config());
  REQUIRE(again.open({"pd"}, nullptr));
  CHECK(again.depth("pd") == 0);
  std::vector<OutboxEntry> more{make("pd", "c")};
  REQUIRE(again.append(more));
  CHECK(more[0].seq == 3);
}

TEST_CASE_FIXTURE(Fixture,
                  "queue bound: at max nothing happens; above it, coalesce per dedup_key") {
  OutboxConfig c = config();
  c.max_entries_per_sink = 4;
  Outbox box(c);
  REQUIRE(box.open({"pd"}, nullptr));
  std::vector<OutboxEntry> es{make("pd", "a"), make("pd", "b"), make("pd", "a", Action::Resolve),
                              make("pd", "c")};
  REQUIRE(box.append(es));  // T: exactly max
  CHECK(box.depth("pd") == 4);
  CHECK(box.queue_stats("pd").coalesced == 0);

  std::vector<OutboxEntry> one{make("pd", "b", Action::Resolve)};
  REQUIRE(box.append(one));  // T+1: coalesce a+ (a- is later) and b+ (b- is later)
  CHECK(box.queue_stats("pd").coalesced == 2);
  CHECK(box.queue_stats("pd").dropped == 0);
  CHECK(keys(box.take("pd", 10)) == std::vector<std::string>{"a-", "c+", "b-"});

  // Durable: the coalesced ones stay gone after a restart.
  Outbox again(c);
  REQUIRE(again.open({"pd"}, nullptr));
  CHECK(keys(again.take("pd", 10)) == std::vector<std::string>{"a-", "c+", "b-"});
}

TEST_CASE_FIXTURE(Fixture,
                  "queue bound: too many distinct keys drops the oldest, counted, logged") {
  OutboxConfig c = config();
  c.max_entries_per_sink = 3;
  Outbox box(c);
  REQUIRE(box.open({"pd"}, nullptr));
  std::vector<OutboxEntry> es;
  for (const char* k : {"a", "b", "c", "d", "e"}) es.push_back(make("pd", k));
  REQUIRE(box.append(es));
  CHECK(box.queue_stats("pd").dropped == 2);
  CHECK(keys(box.take("pd", 10)) == std::vector<std::string>{"c+", "d+", "e+"});
  CHECK(logs.any("dropped 2 oldest"));
}

TEST_CASE_FIXTURE(Fixture, "queue bound never removes an entry that is being sent") {
  OutboxConfig c = config();
  c.max_entries_per_sink = 3;
  Outbox box(c);
  REQUIRE(box.open({"pd"}, nullptr));
  std::vector<OutboxEntry> es{make("pd", "a"), make("pd", "b")};
  REQUIRE(box.append(es));
  const auto in_flight = box.take("pd", 1);  // "a+" is on the wire
  std::vector<OutboxEntry> more{make("pd", "a", Action::Resolve), make("pd", "c")};
  REQUIRE(box.append(more));
  // 4 > 3. a+ would be coalesced into a- but is in flight, so it is kept; b+ is the oldest
  // removable entry: dropped. a- stays behind a+.
  box.release(seqs(in_flight));
  CHECK(keys(box.take("pd", 10)) == std::vector<std::string>{"a+", "a-", "c+"});
}

TEST_CASE_FIXTURE(Fixture, "stats: depth and oldest entry") {
  Outbox box(config());
  REQUIRE(box.open({"pd", "slack"}, nullptr));
  CHECK(box.stats().oldest_wall_ms == 0);
  std::vector<OutboxEntry> es{make("pd", "a", Action::Trigger, 5000),
                              make("slack", "a", Action::Trigger, 4000)};
  REQUIRE(box.append(es));
  CHECK(box.stats().depth == 2);
  CHECK(box.stats().oldest_wall_ms == 4000);
  CHECK(box.queue_stats("pd").oldest_wall_ms == 5000);
  CHECK(box.stats().file_bytes > 0);
}

// Issue 19 item 7: the snapshot is written after the outbox; the app replays what the outbox
// holds past the snapshot's seq. That history must survive settling and compaction until the
// snapshot that reflects it is durable (keep_from).
TEST_CASE_FIXTURE(Fixture, "history: settled entries past keep_from survive compaction and a reopen") {
  {
    OutboxConfig c = config();
    c.keep_settled_for_snapshot = true;
    Outbox box(c);
    REQUIRE(box.open({"pd"}, nullptr));
    std::vector<OutboxEntry> es{make("pd", "a"), make("pd", "b"), make("pd", "a", Action::Resolve)};
    REQUIRE(box.append(es));
    CHECK(box.next_seq() == 4);
    box.keep_from(2);  // a snapshot reflects seq 1
    REQUIRE(box.settle(seqs(box.take("pd", 10)), Disposition::Delivered));
    REQUIRE(box.compact(nullptr));
    CHECK(box.depth("pd") == 0);
  }
  Outbox box(config());
  REQUIRE(box.open({"pd"}, nullptr));
  CHECK(box.depth("pd") == 0);  // settled stays settled
  const auto h = box.take_history(2);
  CHECK(keys(h) == std::vector<std::string>{"b+", "a-"});
  CHECK(seqs(h) == std::vector<std::uint64_t>{2, 3});
  CHECK(box.take_history(0).empty());  // once
  std::vector<OutboxEntry> more{make("pd", "c")};
  REQUIRE(box.append(more));
  CHECK(more[0].seq == 4);
}

TEST_CASE_FIXTURE(Fixture, "history: keep_from lets compaction forget what a snapshot reflects") {
  {
    OutboxConfig c = config();
    c.keep_settled_for_snapshot = true;
    Outbox box(c);
    REQUIRE(box.open({"pd"}, nullptr));
    std::vector<OutboxEntry> es{make("pd", "a"), make("pd", "b")};
    REQUIRE(box.append(es));
    REQUIRE(box.settle(seqs(box.take("pd", 10)), Disposition::Delivered));
    box.keep_from(3);
    REQUIRE(box.compact(nullptr));
  }
  Outbox box(config());
  REQUIRE(box.open({"pd"}, nullptr));
  CHECK(box.take_history(0).empty());
  std::vector<OutboxEntry> more{make("pd", "c")};
  REQUIRE(box.append(more));
  CHECK(more[0].seq == 3);
}

// Issue 11: Notify (one-shot context, never a page) is a valid action in the record codec: a
// notice queued for Slack survives a restart like any other entry.
TEST_CASE_FIXTURE(Fixture, "a Notify entry survives a reopen") {
  {
    Outbox box(config());
    REQUIRE(box.open({"slack"}, nullptr));
    std::vector<OutboxEntry> es{make("slack", "presence/incident/1", Action::Notify)};
    REQUIRE(box.append(es));
  }
  Outbox box(config());
  REQUIRE(box.open({"slack"}, nullptr));
  CHECK(box.stats().corrupt_records == 0);
  auto got = box.take("slack", 10);
  REQUIRE(got.size() == 1);
  CHECK(got[0].intent.action == Action::Notify);
}
