#include "presence/alert/outbox.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <string_view>

#include "presence/store/codec.h"
#include "presence/store/record.h"

namespace presence::alert {
namespace {

constexpr std::string_view kMagic{"PRSOUTBX", 8};
constexpr std::size_t kHeaderSize = 12;

enum class Kind : std::uint8_t { Enqueue = 1, Settle = 2, Meta = 3 };

constexpr std::uint8_t kMaxAction = static_cast<std::uint8_t>(core::AlertIntent::Action::Notify);
constexpr std::uint8_t kMaxType = static_cast<std::uint8_t>(core::AlertIntent::Type::Overloaded);
constexpr std::uint8_t kMaxSeverity = static_cast<std::uint8_t>(core::Severity::Info);
constexpr std::uint8_t kMaxDisposition = static_cast<std::uint8_t>(Disposition::Orphaned);

std::string header() {
  std::string h(kMagic);
  store::Writer w;
  w.u32(kOutboxVersion);
  h += w.data();
  return h;
}

void encode_entry(std::string& out, const OutboxEntry& e) {
  store::Writer w;
  w.u8(static_cast<std::uint8_t>(Kind::Enqueue));
  w.u64(e.seq);
  w.str(e.sink);
  w.i64(e.wall_ms);
  const auto& i = e.intent;
  w.u8(static_cast<std::uint8_t>(i.action));
  w.u8(static_cast<std::uint8_t>(i.type));
  w.u8(static_cast<std::uint8_t>(i.severity));
  w.str(i.dedup_key);
  w.str(i.summary);
  w.str(i.component);
  w.str(i.group);
  w.str(i.cls);
  w.u32(static_cast<std::uint32_t>(i.details.size()));
  for (const auto& [k, v] : i.details) {
    w.str(k);
    w.str(v);
  }
  w.i64(core::to_ms(i.at));
  store::append_record(out, w.data());
}

bool decode_entry(store::Reader& r, OutboxEntry& e) {
  e.seq = r.u64();
  e.sink = r.str();
  e.wall_ms = r.i64();
  const std::uint8_t action = r.u8();
  const std::uint8_t type = r.u8();
  const std::uint8_t severity = r.u8();
  if (action > kMaxAction || type > kMaxType || severity > kMaxSeverity) return false;
  auto& i = e.intent;
  i.action = static_cast<core::AlertIntent::Action>(action);
  i.type = static_cast<core::AlertIntent::Type>(type);
  i.severity = static_cast<core::Severity>(severity);
  i.dedup_key = r.str();
  i.summary = r.str();
  i.component = r.str();
  i.group = r.str();
  i.cls = r.str();
  const std::uint32_t n = r.count(8);
  for (std::uint32_t k = 0; k < n && r.ok(); ++k) {
    std::string key = r.str();
    std::string value = r.str();
    i.details.emplace_back(std::move(key), std::move(value));
  }
  i.at = core::mono_ms(r.i64());
  return r.ok() && r.at_end();
}

void encode_meta(std::string& out, std::uint64_t next_seq) {
  store::Writer w;
  w.u8(static_cast<std::uint8_t>(Kind::Meta));
  w.u64(next_seq);
  store::append_record(out, w.data());
}

}  // namespace

const char* to_string(Disposition d) {
  switch (d) {
    case Disposition::Delivered:
      return "delivered";
    case Disposition::DeadLettered:
      return "dead_lettered";
    case Disposition::Coalesced:
      return "coalesced";
    case Disposition::Dropped:
      return "dropped";
    case Disposition::Orphaned:
      return "orphaned";
  }
  return "unknown";
}

Outbox::Outbox(OutboxConfig config)
    : config_(std::move(config)), log_(common::or_stderr(config_.log)) {}

Outbox::~Outbox() = default;

bool Outbox::open(const std::vector<std::string>& sinks, std::string* error) {
  std::lock_guard lock(mu_);
  queues_.clear();
  sink_of_.clear();
  stats_ = {};
  next_seq_ = 1;
  history_.clear();
  recent_settled_.clear();
  for (const auto& s : sinks) queues_[s];

  auto read = store::read_file(config_.path);
  if (!read.ok()) {
    if (error != nullptr) *error = read.error;
    return false;
  }
  bool rewrite = !read.value || read.value->empty();
  std::string data = std::move(read.value).value_or(std::string());

  std::string_view body(data);
  if (data.size() >= kHeaderSize && body.substr(0, kMagic.size()) == kMagic) {
    store::Reader hr(body.substr(kMagic.size(), 4));
    const std::uint32_t version = hr.u32();
    if (version != kOutboxVersion) {
      // A newer presenced wrote this: do not guess at its records. Keep it aside, start empty.
      const std::string aside = config_.path + ".v" + std::to_string(version);
      std::rename(config_.path.c_str(), aside.c_str());
      log_("outbox: " + config_.path + " has version " + std::to_string(version) +
           ", this build writes " + std::to_string(kOutboxVersion) + "; moved to " + aside +
           ", starting empty");
      body = {};
      rewrite = true;
    } else {
      body.remove_prefix(kHeaderSize);
    }
  } else if (!data.empty()) {
    // Damaged header: the records carry their own magic and checksums, so scan everything.
    ++stats_.corrupt_records;
    rewrite = true;
  }

  std::map<std::uint64_t, OutboxEntry> all;
  std::uint64_t bad_payloads = 0;
  const store::ScanStats scan = store::scan_records(body, [&](std::string_view payload) {
    store::Reader r(payload);
    const auto kind = static_cast<Kind>(r.u8());
    if (kind == Kind::Enqueue) {
      OutboxEntry e;
      if (!decode_entry(r, e)) {
        ++bad_payloads;
        return;
      }
      next_seq_ = std::max(next_seq_, e.seq + 1);
      const std::uint64_t seq = e.seq;
      history_.push_back(e);
      all[seq] = std::move(e);
    } else if (kind == Kind::Settle) {
      const std::uint8_t d = r.u8();
      const std::uint32_t n = r.count(8);
      std::vector<std::uint64_t> seqs;
      for (std::uint32_t k = 0; k < n && r.ok(); ++k) seqs.push_back(r.u64());
      if (!r.ok() || !r.at_end() || d == 0 || d > kMaxDisposition) {
        ++bad_payloads;
        return;
      }
      for (auto s : seqs) {
        auto it = all.find(s);
        if (it == all.end()) continue;
        // Kept for a compaction before the next snapshot (keep_from); trimmed by keep_from().
        recent_settled_.emplace(s, std::move(it->second));
        all.erase(it);
      }
    } else if (kind == Kind::Meta) {
      const std::uint64_t next = r.u64();
      if (!r.ok() || !r.at_end()) {
        ++bad_payloads;
        return;
      }
      next_seq_ = std::max(next_seq_, next);
    } else {
      ++bad_payloads;
    }
  });
  stats_.corrupt_records += scan.corrupt_records + bad_payloads;
  stats_.truncated_tails += scan.truncated_tail ? 1 : 0;
  stats_.file_records = scan.records;
  if (!scan.clean() || bad_payloads > 0 || stats_.corrupt_records > 0) {
    log_("outbox: " + config_.path + ": skipped " + std::to_string(stats_.corrupt_records) +
         " corrupt record(s) and " + std::to_string(scan.skipped_bytes) + " byte(s)" +
         (scan.truncated_tail ? ", truncated tail (crash mid-write)" : "") +
         "; the entries in them are lost, the rest is kept; rewriting the file");
    rewrite = true;
  }

  std::map<std::string, std::uint64_t> orphans;
  for (auto& [seq, e] : all) {
    auto it = queues_.find(e.sink);
    if (it == queues_.end()) {
      ++orphans[e.sink];
      continue;
    }
    sink_of_[seq] = e.sink;
    it->second.entries.emplace(seq, std::move(e));
  }
  for (const auto& [sink, n] : orphans) {
    stats_.orphaned += n;
    log_("outbox: dropped " + std::to_string(n) + " queued alert(s) for sink '" + sink +
         "', which is no longer configured");
    rewrite = true;
  }
  stats_.loaded = live_locked();
  std::sort(history_.begin(), history_.end(),
            [](const OutboxEntry& a, const OutboxEntry& b) { return a.seq < b.seq; });
  trim_recent_locked();

  std::string open_error;
  if (rewrite) {
    if (!compact_locked(&open_error)) {
      if (!file_.is_open()) {
        if (error != nullptr) *error = open_error;
        return false;
      }
      // The file can be appended to but not rewritten: a full disk after a crash left a torn
      // tail (issue 19 item 6: every restart exited 1 until space was freed). Start anyway: the
      // entries are in memory and are sent; new records go after the damage, which the next
      // open skips again (records carry their own magic) and rewrites once there is space.
      write_failing_ = true;
      last_write_error_ = open_error;
      ++stats_.write_failures;
      log_("outbox: cannot rewrite " + config_.path + " (" + open_error +
           "); continuing without durability until writes succeed: alerts are still sent, but a "
           "crash now could lose the ones not yet delivered");
    }
  } else {
    if (auto opened = file_.open(config_.path); !opened.ok()) {
      if (error != nullptr) *error = opened.error;
      return false;
    }
    maybe_compact_locked();
  }
  for (auto& [sink, q] : queues_) enforce_bound_locked(q, sink);
  return true;
}

bool Outbox::write_locked(const std::string& bytes, std::string* error) {
  store::Done done = file_.append(bytes);
  if (done.ok() && config_.fsync) done = file_.sync();
  const bool ok = done.ok();
  std::string why = std::move(done.error);
  if (!ok && !file_.is_open() && why.empty()) why = "outbox file not open";
  write_failing_ = !ok;
  if (!ok) last_write_error_ = why;
  if (error != nullptr) *error = why;
  return ok;
}

bool Outbox::write_failing(std::string* error) const {
  std::lock_guard lock(mu_);
  if (error != nullptr && write_failing_) *error = last_write_error_;
  return write_failing_;
}

bool Outbox::append(std::vector<OutboxEntry>& entries) {
  if (entries.empty()) return true;
  std::lock_guard lock(mu_);
  std::string bytes;
  for (auto& e : entries) {
    e.seq = next_seq_++;
    encode_entry(bytes, e);
  }
  std::string error;
  const bool ok = write_locked(bytes, &error);
  if (!ok) {
    ++stats_.write_failures;
    if (write_log_.allow()) {
      log_("outbox: write failed, " + std::to_string(entries.size()) +
           " alert(s) are queued in memory only: " + error + " (" +
           std::to_string(stats_.write_failures) + " write failures in total)");
    }
  }
  stats_.file_records += entries.size();
  std::set<std::string> touched;
  for (const auto& e : entries) {
    auto it = queues_.find(e.sink);
    if (it == queues_.end()) continue;  // the dispatcher only addresses configured sinks
    sink_of_[e.seq] = e.sink;
    it->second.entries.emplace(e.seq, e);
    touched.insert(e.sink);
  }
  for (const auto& sink : touched) enforce_bound_locked(queues_[sink], sink);
  return ok;
}

void Outbox::enforce_bound_locked(Queue& q, const std::string& sink) {
  const std::size_t max = std::max<std::size_t>(config_.max_entries_per_sink, 1);
  if (q.entries.size() <= max) return;

  // 1. Coalesce: per dedup_key only the latest entry matters for the state the sink ends in
  //    (trigger then resolve = resolved; resolve then trigger = open). Order is kept: survivors
  //    stay in seq order, and in-flight entries (the head) are never removed.
  std::map<std::string_view, std::uint64_t> latest;
  for (const auto& [seq, e] : q.entries) {
    if (!e.intent.dedup_key.empty()) latest[e.intent.dedup_key] = seq;
  }
  std::vector<std::uint64_t> coalesced;
  for (const auto& [seq, e] : q.entries) {
    if (q.in_flight.count(seq) != 0 || e.intent.dedup_key.empty()) continue;
    if (latest[e.intent.dedup_key] != seq) coalesced.push_back(seq);
  }
  latest.clear();  // views into entries about to be erased
  if (!coalesced.empty()) {
    q.coalesced += coalesced.size();
    settle_locked(coalesced, Disposition::Coalesced);
  }
  if (q.entries.size() <= max) return;

  // 2. Still too many distinct keys: drop the oldest. A counted, logged loss (docs/alerts.md).
  std::vector<std::uint64_t> dropped;
  std::size_t size = q.entries.size();
  for (const auto& [seq, e] : q.entries) {
    if (size <= max) break;
    if (q.in_flight.count(seq) != 0) continue;
    dropped.push_back(seq);
    --size;
  }
  if (!dropped.empty()) {
    q.dropped += dropped.size();
    if (drop_log_.allow())
      log_("outbox: sink '" + sink + "' over outbox_max_entries_per_sink=" + std::to_string(max) +
           " after coalescing: dropped " + std::to_string(dropped.size()) + " oldest alert(s), " +
           std::to_string(q.dropped) + " in total");
    settle_locked(dropped, Disposition::Dropped);
  }
}

std::vector<OutboxEntry> Outbox::take(const std::string& sink, std::size_t max) {
  std::lock_guard lock(mu_);
  std::vector<OutboxEntry> out;
  auto it = queues_.find(sink);
  if (it == queues_.end()) return out;
  for (const auto& [seq, e] : it->second.entries) {
    if (out.size() >= max) break;
    out.push_back(e);
    it->second.in_flight.insert(seq);
  }
  return out;
}

bool Outbox::settle(const std::vector<std::uint64_t>& seqs, Disposition disposition) {
  std::lock_guard lock(mu_);
  return settle_locked(seqs, disposition);
}

bool Outbox::settle_locked(const std::vector<std::uint64_t>& seqs, Disposition disposition) {
  std::vector<std::uint64_t> known;
  for (auto s : seqs) {
    if (sink_of_.count(s) != 0) known.push_back(s);
  }
  if (known.empty()) return true;
  store::Writer w;
  w.u8(static_cast<std::uint8_t>(Kind::Settle));
  w.u8(static_cast<std::uint8_t>(disposition));
  w.u32(static_cast<std::uint32_t>(known.size()));
  for (auto s : known) w.u64(s);
  std::string bytes;
  store::append_record(bytes, w.data());
  std::string error;
  const bool ok = write_locked(bytes, &error);
  if (!ok) {
    // Removed from memory anyway: retrying a settled entry forever would be worse. After a
    // restart it may be sent again (at-least-once; dedup_key makes it harmless).
    ++stats_.write_failures;
    if (write_log_.allow())
      log_("outbox: could not record " + std::string(to_string(disposition)) + " for " +
           std::to_string(known.size()) + " alert(s): " + error);
  }
  ++stats_.file_records;
  for (auto s : known) {
    auto it = sink_of_.find(s);
    auto& q = queues_[it->second];
    if (config_.keep_settled_for_snapshot && s >= keep_from_) {
      auto e = q.entries.find(s);
      if (e != q.entries.end()) recent_settled_.emplace(s, e->second);
    }
    q.entries.erase(s);
    q.in_flight.erase(s);
    sink_of_.erase(it);
  }
  trim_recent_locked();
  maybe_compact_locked();
  return ok;
}

void Outbox::trim_recent_locked() {
  if (!config_.keep_settled_for_snapshot) {
    recent_settled_.clear();
    return;
  }
  while (!recent_settled_.empty() && (recent_settled_.begin()->first < keep_from_ ||
                                      recent_settled_.size() > kMaxRecentSettled)) {
    if (recent_settled_.begin()->first >= keep_from_) ++stats_.recent_settled_evicted;
    recent_settled_.erase(recent_settled_.begin());
  }
}

bool Outbox::recover() {
  std::lock_guard lock(mu_);
  if (!write_failing_) return true;
  std::string error;
  if (!compact_locked(&error)) return false;
  log_("outbox: " + config_.path + " written again (everything queued is durable)");
  return true;
}

std::uint64_t Outbox::next_seq() const {
  std::lock_guard lock(mu_);
  return next_seq_;
}

std::vector<OutboxEntry> Outbox::take_history(std::uint64_t from) {
  std::lock_guard lock(mu_);
  std::vector<OutboxEntry> out;
  for (auto& e : history_)
    if (e.seq >= from) out.push_back(std::move(e));
  std::vector<OutboxEntry>().swap(history_);
  return out;
}

void Outbox::keep_from(std::uint64_t seq) {
  std::lock_guard lock(mu_);
  keep_from_ = std::max(keep_from_, seq);
  trim_recent_locked();
}

void Outbox::release(const std::vector<std::uint64_t>& seqs) {
  std::lock_guard lock(mu_);
  for (auto s : seqs) {
    auto it = sink_of_.find(s);
    if (it != sink_of_.end()) queues_[it->second].in_flight.erase(s);
  }
}

std::size_t Outbox::live_locked() const {
  std::size_t n = 0;
  for (const auto& [sink, q] : queues_) n += q.entries.size();
  return n;
}

void Outbox::maybe_compact_locked() {
  if (file_.size() < config_.compact_min_bytes || file_.size() < compact_retry_at_) return;
  // Settled records dominate: more dead records than live ones.
  // (Settled entries kept for the snapshot count as live: a compaction keeps them.)
  if (stats_.file_records <= 2 * (live_locked() + recent_settled_.size()) + 1) return;
  std::string error;
  if (!compact_locked(&error)) {
    // Disk full, most likely: do not rewrite the whole file again on every settle.
    compact_retry_at_ = file_.size() + std::max<std::uint64_t>(config_.compact_min_bytes, 1u << 16);
    if (write_log_.allow()) log_("outbox: compaction failed (will retry later): " + error);
  } else {
    compact_retry_at_ = 0;
  }
}

bool Outbox::compact(std::string* error) {
  std::lock_guard lock(mu_);
  return compact_locked(error);
}

bool Outbox::compact_locked(std::string* error) {
  std::string bytes = header();
  encode_meta(bytes, next_seq_);
  std::map<std::uint64_t, const OutboxEntry*> ordered;
  for (const auto& [sink, q] : queues_) {
    for (const auto& [seq, e] : q.entries) ordered[seq] = &e;
  }
  // Settled entries the last snapshot does not reflect yet: kept so that a crash before the next
  // snapshot can still replay them (issue 19 item 7), followed by their settle record.
  std::vector<std::uint64_t> settled;
  for (const auto& [seq, e] : recent_settled_) {
    if (ordered.count(seq) != 0) continue;
    ordered[seq] = &e;
    settled.push_back(seq);
  }
  for (const auto& [seq, e] : ordered) encode_entry(bytes, *e);
  if (!settled.empty()) {
    store::Writer w;
    w.u8(static_cast<std::uint8_t>(Kind::Settle));
    w.u8(static_cast<std::uint8_t>(Disposition::Delivered));
    w.u32(static_cast<std::uint32_t>(settled.size()));
    for (auto seq : settled) w.u64(seq);
    store::append_record(bytes, w.data());
  }
  file_.close();
  const store::Done write = store::write_file_atomic(config_.path, bytes);
  const bool written = write.ok();
  if (!written && error != nullptr) *error = write.error;
  // Reopen whatever is there now (the new file, or the old one if the rewrite failed).
  if (auto opened = file_.open(config_.path); !opened.ok()) {
    if (error != nullptr && written) *error = opened.error;
    return false;
  }
  if (!written) {
    write_failing_ = true;
    if (error != nullptr) last_write_error_ = *error;
    return false;
  }
  write_failing_ = false;
  stats_.file_records = 1 + ordered.size() + (settled.empty() ? 0 : 1);
  ++stats_.compactions;
  return true;
}

std::size_t Outbox::depth(const std::string& sink) const {
  std::lock_guard lock(mu_);
  auto it = queues_.find(sink);
  return it == queues_.end() ? 0 : it->second.entries.size();
}

bool Outbox::holds(const std::string& sink, const std::string& dedup_key,
                   core::AlertIntent::Action action, std::int64_t wall_ms,
                   std::int64_t window_ms) const {
  std::lock_guard lock(mu_);
  const auto q = queues_.find(sink);
  if (q == queues_.end()) return false;
  for (const auto& [seq, e] : q->second.entries) {
    const std::int64_t apart = e.wall_ms > wall_ms ? e.wall_ms - wall_ms : wall_ms - e.wall_ms;
    if (e.intent.action == action && apart <= window_ms && e.intent.dedup_key == dedup_key)
      return true;
  }
  return false;
}

std::vector<std::pair<core::AlertIntent::Action, std::int64_t>> Outbox::later(
    const std::string& sink, const std::string& dedup_key, std::int64_t wall_ms) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<core::AlertIntent::Action, std::int64_t>> out;
  const auto q = queues_.find(sink);
  if (q == queues_.end()) return out;
  for (const auto& [seq, e] : q->second.entries)
    if (e.wall_ms > wall_ms && e.intent.dedup_key == dedup_key)
      out.emplace_back(e.intent.action, e.wall_ms);
  return out;
}

std::vector<OutboxEntry> Outbox::unsent() const {
  std::lock_guard lock(mu_);
  std::vector<OutboxEntry> out;
  for (const auto& [sink, q] : queues_)
    for (const auto& [seq, e] : q.entries) out.push_back(e);
  return out;
}

SinkQueueStats Outbox::queue_stats(const std::string& sink) const {
  std::lock_guard lock(mu_);
  SinkQueueStats s;
  auto it = queues_.find(sink);
  if (it == queues_.end()) return s;
  const auto& q = it->second;
  s.depth = q.entries.size();
  s.oldest_wall_ms = q.entries.empty() ? 0 : q.entries.begin()->second.wall_ms;
  s.coalesced = q.coalesced;
  s.dropped = q.dropped;
  return s;
}

OutboxStats Outbox::stats() const {
  std::lock_guard lock(mu_);
  OutboxStats s = stats_;
  s.depth = live_locked();
  s.file_bytes = file_.size();
  s.oldest_wall_ms = 0;
  for (const auto& [sink, q] : queues_) {
    if (q.entries.empty()) continue;
    const std::int64_t w = q.entries.begin()->second.wall_ms;
    if (s.oldest_wall_ms == 0 || w < s.oldest_wall_ms) s.oldest_wall_ms = w;
  }
  return s;
}

}  // namespace presence::alert
