// The durable outbox (issue 5, "Durability"): every alert is written here, fsync'd, and only then
// sent; delivery outcomes are written here too, so a restart resends only what was not settled.
//
// File: header "PRSOUTBX" | version u32, then checksummed records (presence/store/record.h):
//   Enqueue{seq, sink, intent, wall_ms}   one per (intent, sink)
//   Settle{seqs..., disposition}          delivered / dead-lettered / coalesced / dropped /
//   orphaned Meta{next_seq}                        written by compaction so seq never goes
//   backwards
// Corrupt records and torn tails are skipped, counted and logged, and the file is compacted at
// once so the damage is reported once, not on every start (incident 004: a corrupt queue must not
// stop the service). Compaction rewrites the live entries to <path>.tmp and renames it over the
// file when settled records dominate.
//
// Queues are per sink and strictly ordered by seq. The bound (max_entries_per_sink) is kept by
// coalescing first (per dedup_key only the latest entry survives: the state PagerDuty must end in)
// and then dropping the oldest, each drop counted and logged. Entries being sent are never touched.
//
// Thread-safe: one mutex; the writer thread appends and the sink threads take and settle.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "presence/alert/outbox_entry.h"
#include "presence/store/file_io.h"
#include "presence/common/log.h"

namespace presence::alert {

inline constexpr std::uint32_t kOutboxVersion = 1;

struct OutboxConfig {
  std::string path;                            // outbox_path
  std::size_t max_entries_per_sink = 10000;    // outbox_max_entries_per_sink
  bool fsync = true;                           // off only in benchmarks
  std::uint64_t compact_min_bytes = 1u << 20;  // never compact a file smaller than this
  // Settled entries are kept (through compactions) until keep_from() passes them, for a
  // snapshot that replays them after a crash (issue 19 item 7). Off: settled entries go at once.
  bool keep_settled_for_snapshot = false;
  common::LogFn log;
};

enum class Disposition : std::uint8_t {
  Delivered = 1,     // endpoint accepted it (2xx)
  DeadLettered = 2,  // endpoint rejected it for good (4xx other than 408/429); logged with body
  Coalesced = 3,     // replaced by a later entry with the same dedup_key (queue over its bound)
  Dropped = 4,       // oldest entry dropped to keep the bound after coalescing
  Orphaned = 5,      // its sink is no longer configured
};
const char* to_string(Disposition);

struct SinkQueueStats {
  std::size_t depth = 0;
  std::int64_t oldest_wall_ms = 0;  // 0 when empty
  std::uint64_t coalesced = 0;
  std::uint64_t dropped = 0;
};

struct OutboxStats {
  std::size_t depth = 0;            // live entries, all sinks
  std::int64_t oldest_wall_ms = 0;  // 0 when empty
  std::uint64_t file_bytes = 0;
  std::uint64_t file_records = 0;
  std::uint64_t compactions = 0;
  std::uint64_t corrupt_records = 0;  // skipped at load (bad checksum, garbage, bad payload)
  std::uint64_t truncated_tails = 0;  // torn last record at load (crash mid-append)
  std::uint64_t write_failures = 0;   // appends/fsyncs that failed (entries kept in memory)
  std::uint64_t orphaned = 0;
  std::uint64_t loaded = 0;  // live entries found at open
  std::uint64_t recent_settled_evicted = 0;  // settled entries a compaction could not keep
};

class Outbox {
 public:
  explicit Outbox(OutboxConfig config);
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Loads the file (creating it if missing) for the given sink names. Corruption is never an
  // error; false only when the file cannot be created or written (error says why).
  bool open(const std::vector<std::string>& sinks, std::string* error);

  // Assigns seq to each entry, writes them with one write and one fsync, queues them, then keeps
  // the per-sink bound. Returns false if the write failed: the entries are still queued in memory
  // (better to page without durability than not to page), and write_failures counts it.
  bool append(std::vector<OutboxEntry>& entries);

  // The first up to max entries of sink, marked in flight (the bound will not remove them).
  // The caller (one delivery thread per sink) settles or releases them before taking again.
  std::vector<OutboxEntry> take(const std::string& sink, std::size_t max);
  // Durably removes entries (one record, one fsync). Unknown seqs are ignored.
  bool settle(const std::vector<std::uint64_t>& seqs, Disposition disposition);
  // Un-marks in-flight entries that were not settled (shutdown mid-delivery); they stay queued.
  void release(const std::vector<std::uint64_t>& seqs);

  // True while the last write (append, settle, compaction) failed; *error gets its reason.
  bool write_failing(std::string* error = nullptr) const;
  // While writes fail: rewrite the file from memory (compaction), which also repairs a torn tail.
  // True when the outbox is durable again. Not on the engine thread (it writes and fsyncs).
  bool recover();

  std::size_t depth(const std::string& sink) const;
  // A live (unsettled) entry of sink with this dedup_key and action, decided within window_ms of
  // wall_ms (HA hand-off, presence/ha/node.h: the page is ours to send already).
  bool holds(const std::string& sink, const std::string& dedup_key,
             core::AlertIntent::Action action, std::int64_t wall_ms,
             std::int64_t window_ms) const;
  // The live entries of sink with this dedup_key decided after wall_ms, oldest first, as (action,
  // decided wall ms): this instance's own later decisions for the page (HA gate, presence/ha).
  std::vector<std::pair<core::AlertIntent::Action, std::int64_t>> later(
      const std::string& sink, const std::string& dedup_key, std::int64_t wall_ms) const;
  // Every live (unsettled) entry, all sinks, oldest first per sink (HA: a follower that becomes
  // the leader records what it holds, presence/ha/node.h).
  std::vector<OutboxEntry> unsent() const;
  SinkQueueStats queue_stats(const std::string& sink) const;
  OutboxStats stats() const;

  // Rewrites the file with only live entries (and the settled ones the snapshot may still need,
  // see keep_from). Called automatically when settled records make up more than half of a file of
  // at least compact_min_bytes.
  bool compact(std::string* error);

  // Issue 19 item 7 ("a stale snapshot loses a page"): the snapshot is written after the outbox,
  // so after a crash the outbox may hold decisions the snapshot does not. These let the app
  // replay them over the snapshot.
  // The seq the next appended entry gets.
  std::uint64_t next_seq() const;
  // Every entry (settled or not) with seq >= from found in the file at open(), in seq order.
  // Memory for them is freed by the first call.
  std::vector<OutboxEntry> take_history(std::uint64_t from);
  // The last durable snapshot reflects every entry below seq: compaction keeps settled entries
  // from seq on (as enqueue + settle records), so a crash before the next snapshot can still be
  // replayed. At most kMaxRecentSettled are kept (then the oldest go, counted in stats).
  void keep_from(std::uint64_t seq);
  static constexpr std::size_t kMaxRecentSettled = 65536;

 private:
  struct Queue {
    std::map<std::uint64_t, OutboxEntry> entries;  // by seq
    std::set<std::uint64_t> in_flight;
    std::uint64_t coalesced = 0;
    std::uint64_t dropped = 0;
  };

  bool write_locked(const std::string& bytes, std::string* error);
  bool settle_locked(const std::vector<std::uint64_t>& seqs, Disposition disposition);
  void enforce_bound_locked(Queue& queue, const std::string& sink);
  bool compact_locked(std::string* error);
  void maybe_compact_locked();
  void trim_recent_locked();
  std::size_t live_locked() const;

  OutboxConfig config_;
  common::LogFn log_;
  mutable std::mutex mu_;
  store::AppendFile file_;
  std::map<std::string, Queue> queues_;
  std::map<std::uint64_t, std::string> sink_of_;  // seq -> sink, for settle()
  std::uint64_t next_seq_ = 1;
  std::uint64_t compact_retry_at_ = 0;  // after a failed compaction, wait for this file size
  bool write_failing_ = false;
  std::string last_write_error_;
  std::vector<OutboxEntry> history_;     // open() .. take_history(): the file's entries
  std::uint64_t keep_from_ = 0;          // see keep_from()
  std::map<std::uint64_t, OutboxEntry> recent_settled_;  // settled, seq >= keep_from_
  OutboxStats stats_;
  common::LogLimiter drop_log_;   // a sink down for hours must not log every drop
  common::LogLimiter write_log_;  // nor every failed write on a full disk
};

}  // namespace presence::alert
