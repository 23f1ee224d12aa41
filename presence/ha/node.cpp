#include "presence/ha/node.h"

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>

namespace presence::ha {
namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

std::int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Requests to etcd are bounded well inside one keep-alive period, so a hung etcd never delays
// noticing that the lease is running out.
core::Duration request_timeout(const Timing& t) {
  return std::clamp<core::Duration>(t.lease_ttl / 4, std::chrono::milliseconds(200),
                                    std::chrono::milliseconds(2000));
}

}  // namespace

Node::Node(NodeConfig config, NodeHooks hooks)
    : config_(std::move(config)),
      log_(common::or_stderr(config_.log)),
      hooks_(std::move(hooks)),
      etcd_(config_.endpoints, request_timeout(config_.timing)),
      leader_key_(config_.key_prefix + "leader"),
      members_prefix_(config_.key_prefix + "members/"),
      sending_prefix_(config_.key_prefix + "sending/"),
      role_(config_.timing),
      peers_(config_.timing.peer_down_after) {}

Node::~Node() { stop(); }

core::MonoTime Node::now() const {
  return core::mono_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                           SteadyClock::now().time_since_epoch())
                           .count());
}

void Node::start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    peers_.start(now());
  }
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void Node::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(wake_mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  std::int64_t lease = 0;
  {
    std::lock_guard lock(mu_);
    lease = lease_;
    lease_ = 0;
    role_.step_down();
  }
  // Revoking deletes our election key and member key at once: the peer takes over on its next
  // loop (lease_ttl / 3) instead of after the whole TTL. Bounded by the request timeout.
  if (lease != 0 && etcd_.revoke(lease)) log_("ha: left the pair (lease revoked)");
}

void Node::run() {
  // The leader renews every lease_ttl / 3. A follower campaigns at least every second: after a
  // crash the key is free once the dead leader's lease expires, and the takeover then costs at
  // most one period more, so lease_ttl + 1 s (+ one request) stays inside the issue's
  // "lease_ttl + 2 s" at any lease_ttl (at the default 10 s, lease_ttl / 3 would be 3.3 s).
  const auto leader_period = std::max<core::Duration>(config_.timing.lease_ttl / 3,
                                                      std::chrono::milliseconds(100));
  const auto follower_period = std::min<core::Duration>(leader_period, std::chrono::seconds(1));
  for (;;) {
    step(now());
    bool leading = false;
    {
      std::lock_guard lock(mu_);
      leading = role_.fence() != 0;
    }
    std::unique_lock lock(wake_mu_);
    if (wake_.wait_for(lock, leading ? leader_period : follower_period,
                       [&] { return stopping_; }))
      return;
  }
}

void Node::step(core::MonoTime t) {
  std::int64_t lease = 0;
  bool was_leader = false;
  {
    std::lock_guard lock(mu_);
    lease = lease_;
    was_leader = role_.fence() != 0;
  }
  bool reachable = true;
  const core::MonoTime sent = t;
  if (lease != 0) {
    const auto ttl = etcd_.keepalive(lease);
    if (!ttl) {
      reachable = false;
    } else if (*ttl <= 0) {
      std::lock_guard lock(mu_);
      log_("ha: lease expired (paused or cut off longer than lease_ttl): " +
           std::string(was_leader ? "stepping down" : "taking a new lease"));
      lease_ = lease = 0;
      role_.step_down();
      was_leader = false;
    }
  }
  if (reachable && lease == 0) {
    const auto ttl_s = std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::seconds>(config_.timing.lease_ttl).count());
    const auto id = etcd_.grant(ttl_s);
    if (!id) reachable = false;
    else lease = *id;
    std::lock_guard lock(mu_);
    lease_ = lease;
  }
  std::optional<Campaign> campaign;
  std::optional<std::vector<KeyValue>> members;
  if (reachable && lease != 0) {
    if (was_leader) {
      // Our key lives on our lease; the keep-alive just renewed both.
      std::lock_guard lock(mu_);
      role_.elected(sent, role_.fence());
    } else {
      campaign = etcd_.campaign(leader_key_, config_.name, lease);
      if (!campaign) reachable = false;
    }
  }
  if (reachable && lease != 0) {
    std::string role_word;
    {
      std::lock_guard lock(mu_);
      role_word = to_string(campaign && campaign->won ? RoleName::Leader : role_.role(t));
    }
    const json status{{"v", 1}, {"name", config_.name}, {"role", role_word},
                      {"wall_ms", wall_now_ms()}};
    if (!etcd_.put(members_prefix_ + config_.name, status.dump(), lease)) reachable = false;
    members = etcd_.range(members_prefix_, true);
    if (!members) reachable = false;
  }

  std::vector<core::AlertIntent> pages;
  {
    std::lock_guard lock(mu_);
    role_.etcd_result(t, reachable);
    if (!reachable) {
      ++etcd_errors_;
      if (etcd_log_.allow())
        log_("ha: etcd unreachable (" + std::to_string(etcd_errors_) + " failed rounds)");
    }
    if (campaign) {
      if (campaign->won) {
        role_.elected(sent, campaign->create_revision);
        ++elections_won_;
        holder_ = config_.name;
        handoff_due_ = true;
      } else {
        holder_ = campaign->holder;
      }
    } else if (was_leader && reachable) {
      holder_ = config_.name;
    }
    if (members) {
      members_.clear();
      bool peer = false;
      for (const auto& kv : *members) {
        const std::string name = kv.key.substr(members_prefix_.size());
        members_.emplace_back(name, kv.value);
        if (name != config_.name) {
          peers_.seen(t, name);
          peer = true;
        }
      }
      if (!peer) peers_.absent();
    }
    const RoleName r = role_.role(t);
    if (r != last_role_) {
      log_(std::string("ha: ") + config_.name + " is now " + to_string(r) +
           (r == RoleName::FailOpen ? " (etcd unreachable for fail_open_after: sending on our own)"
                                    : "") +
           (r == RoleName::Follower && !holder_.empty() ? " (leader: " + holder_ + ")" : ""));
      last_role_ = r;
    }
    // Peer health (incident 004: the standby was not running and nobody knew). Both instances
    // decide it; the gate lets only the one that may send actually send it. While etcd is
    // unreachable nothing is known about the peer: no change either way.
    if (members) {
      const bool down = peers_.down(t);
      if (down != peer_page_open_) {
        peer_page_open_ = down;
        core::AlertIntent p;
        p.action = down ? core::AlertIntent::Action::Trigger : core::AlertIntent::Action::Resolve;
        p.type = core::AlertIntent::Type::Blind;
        p.severity = core::Severity::Error;
        p.dedup_key = "presence/ha" + config_.key_prefix + "peer";
        const std::string who = peers_.last_name().empty() ? "no peer" : "peer '" + peers_.last_name() + "'";
        p.summary = "presenced HA: " + who + " not running for " +
                    std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                       config_.timing.peer_down_after)
                                       .count()) +
                    " s; this pair has no standby (seen by " + config_.name + ")";
        p.component = config_.name;
        p.group = "presenced";
        p.cls = "ha_peer_down";
        p.details = {{"instance", config_.name}, {"peer", peers_.last_name()}};
        log_(std::string("ha: ") + (down ? "peer not running: paging" : "peer back: resolving"));
        pages.push_back(std::move(p));
      }
    }
  }
  for (auto& p : pages)
    if (hooks_.submit) hooks_.submit(std::move(p), 0);
  // The hand-off runs on this thread, after the election, while we still lead (a scan that etcd
  // did not answer is tried again on the next step).
  if (handoff_due_) {
    bool leading = false;
    {
      std::lock_guard lock(mu_);
      leading = role_.leader(now());
    }
    if (!leading) handoff_due_ = false;
    else if (handoff()) {
      handoff_due_ = false;
      adopt_due_ = true;
    }
  }
  // Then the log's open pages, for our own policy to judge (docs/ha.md "Adoption").
  if (adopt_due_ && !handoff_due_) {
    bool leading = false;
    {
      std::lock_guard lock(mu_);
      leading = role_.leader(now());
    }
    if (!leading || !hooks_.adopt) adopt_due_ = false;
    else if (adopt()) adopt_due_ = false;
  }
}

bool Node::adopt() {
  // One pass at takeover, in pages (each answer well under the client's 4 MiB cap). The log keeps
  // one key per (sink, dedup_key) ever paged: ~1 M at 1 M devices (docs/ha.md "Limits"), so the
  // pass is bounded at 2 M keys; past that the rest is left as the log shows (logged).
  constexpr std::int64_t kPage = 500;
  constexpr std::size_t kMaxScan = 2'000'000;
  struct Newest {
    std::int64_t wall_ms = 0;
    bool trigger = false;
  };
  std::map<std::string, Newest> newest;  // dedup_key -> its newest notification, any sink
  const auto see = [&newest](const std::string& key, std::int64_t wall_ms, bool trigger) {
    auto [it, fresh] = newest.try_emplace(key, Newest{wall_ms, trigger});
    // Equal times: a resolve wins (adopting is toward a page; a tie is no evidence of one).
    if (!fresh && (wall_ms > it->second.wall_ms || (wall_ms == it->second.wall_ms && !trigger)))
      it->second = Newest{wall_ms, trigger};
  };
  using Action = core::AlertIntent::Action;
  // Read in the order a page moves (our outbox -> sending record -> log), so a page that moves
  // during the pass is seen at least once.
  if (hooks_.unsent)
    for (const auto& e : hooks_.unsent())
      if (e.intent.action != Action::Notify)
        see(e.intent.dedup_key, e.wall_ms, e.intent.action == Action::Trigger);
  const auto scan = [&](const std::string& prefix, const std::function<void(const KeyValue&)>& each) {
    bool cut = false;
    const auto seen = scan_prefix(prefix, kPage, kMaxScan, each, &cut);
    if (cut)
      log_("ha: adoption read the first " + std::to_string(*seen) + " keys under '" + prefix +
           "' only (bound); the rest are left as the log shows");
    return seen.has_value();
  };
  if (!scan(sending_prefix_, [&](const KeyValue& kv) {
        if (auto rec = decode_sending(kv.value); rec && rec->intent.action != Action::Notify)
          see(rec->intent.dedup_key, rec->wall_ms, rec->intent.action == Action::Trigger);
      }))
    return false;
  const std::string log_prefix = config_.key_prefix + "log/";
  std::size_t bad = 0;
  if (!scan(log_prefix, [&](const KeyValue& kv) {
        // <prefix>log/<sink>/<dedup_key>: sink names have no '/', dedup keys may.
        const auto slash = kv.key.find('/', log_prefix.size());
        if (slash == std::string::npos) return;
        const std::string key = kv.key.substr(slash + 1);
        auto rec = decode(kv.value);
        if (!rec) {
          ++bad;
          return;
        }
        for (const auto& item : rec->sent)
          if (item.action == "trigger" || item.action == "resolve")
            see(key, item.wall_ms, item.action == "trigger");
      }))
    return false;
  std::vector<std::string> open;
  for (const auto& [key, n] : newest)
    if (n.trigger) open.push_back(key);
  {
    std::lock_guard lock(mu_);
    if (!role_.leader(now())) return true;  // deposed meanwhile: the next leader adopts
    bad_records_ += bad;
  }
  const std::size_t count = open.size();
  if (!hooks_.adopt(std::move(open))) return false;
  {
    std::lock_guard lock(mu_);
    adopt_offered_ += count;
  }
  log_("ha: " + std::to_string(count) +
       " page(s) open in the notification log offered to our policy to adopt");
  return true;
}

std::optional<std::size_t> Node::scan_prefix(const std::string& prefix, std::int64_t page_size,
                                             std::size_t max_keys,
                                             const std::function<void(const KeyValue&)>& each,
                                             bool* cut) {
  std::size_t seen = 0;
  for (std::string from = prefix;;) {
    const auto page = etcd_.range_from(prefix, from, page_size);
    if (!page) return std::nullopt;
    for (const auto& kv : *page) each(kv);
    seen += page->size();
    if (static_cast<std::int64_t>(page->size()) < page_size) return seen;
    if (seen >= max_keys) {
      if (cut != nullptr) *cut = true;
      return seen;
    }
    from = page->back().key + std::string(1, '\0');  // the next key after the last one
  }
}

bool Node::handoff() {
  // Bounded: a sending record exists per entry in flight (one batch per sink), or left by a
  // dead sender until a takeover deals with it; 10,000 is far above either. Read in pages so no
  // answer nears the client's 4 MiB cap (a record is at most a few KiB).
  constexpr std::int64_t kPage = 200;
  constexpr std::size_t kMaxScan = 10000;
  {
    // First, what we hold ourselves (decided while following, never recorded): if we die before
    // delivering it, the next leader finds it here. The scan below then sees it as ours, held.
    std::int64_t fence = 0;
    {
      std::lock_guard lock(mu_);
      fence = role_.fence();
    }
    if (fence == 0) return true;
    if (hooks_.unsent) {
      const auto mine = hooks_.unsent();
      if (!mine.empty() && !record_pages(mine, fence)) return false;
    }
  }
  std::vector<KeyValue> kvs;
  if (!scan_prefix(sending_prefix_, kPage, kMaxScan, [&kvs](const KeyValue& kv) { kvs.push_back(kv); }))
    return false;
  std::int64_t fence = 0;
  {
    std::lock_guard lock(mu_);
    fence = role_.fence();
  }
  if (fence == 0) return true;
  const std::int64_t now_wall = wall_now_ms();
  const std::int64_t window = config_.match_window.count();
  std::vector<std::pair<std::string, SendingRecord>> to_send;  // sending key, record
  std::vector<std::string> to_delete;
  std::size_t cleared = 0, expired = 0, bad = 0;
  for (const auto& kv : kvs) {
    {
      // Stopping: leave the rest to the next leader (stop() must not wait for a long scan).
      std::lock_guard lock(wake_mu_);
      if (stopping_) return true;
    }
    auto rec = decode_sending(kv.value);
    if (!rec) {
      ++bad;
      log_("ha: sending record '" + kv.key + "' is not a v1 record; deleted");
      to_delete.push_back(kv.key);
      continue;
    }
    const auto log_kvs = etcd_.range(log_key(rec->sink, rec->intent.dedup_key));
    if (!log_kvs) return false;
    LogRecord log_rec;
    if (!log_kvs->empty()) {
      if (auto d = decode(log_kvs->front().value)) log_rec = std::move(*d);
    }
    const bool held = hooks_.holds && hooks_.holds(rec->sink, rec->intent.dedup_key,
                                                   rec->intent.action, rec->wall_ms, window);
    switch (decide_handoff(*rec, log_rec, held, config_.name, now_wall,
                           config_.handoff_max_age, config_.match_window)) {
      case Handoff::Send: to_send.emplace_back(kv.key, std::move(*rec)); break;
      case Handoff::Held:
        // Our own copy of the page (recorded above, under its own decided time) replaces it.
        if (hooks_.unsent && rec->by != config_.name) to_delete.push_back(kv.key);
        break;
      case Handoff::Stale:
        ++cleared;
        to_delete.push_back(kv.key);
        break;
      case Handoff::Expired:
        ++expired;
        log_("ha: sending record '" + kv.key + "' of " + rec->by + " is older than " +
             std::to_string(std::chrono::duration_cast<std::chrono::minutes>(
                                config_.handoff_max_age)
                                .count()) +
             " min: deleted, not sent");
        to_delete.push_back(kv.key);
        break;
    }
  }
  // Deleted under the fence: only the leader tidies the log.
  for (const auto& key : to_delete) {
    const auto ok = etcd_.txn({{key, "", true}}, leader_key_, fence);
    if (!ok || !*ok) break;  // unreachable or deposed: the next leader looks again
  }
  // One page per (dedup_key, action, decided time), whatever the number of sinks it was being
  // sent to: the dispatcher queues it for every sink again, and each sink's gate skips it where
  // the log shows it delivered (the original decided time is what makes the entries match).
  std::sort(to_send.begin(), to_send.end(),
            [](const auto& x, const auto& y) { return x.second.wall_ms < y.second.wall_ms; });
  std::vector<SendingRecord> pages;
  for (auto& entry : to_send) {
    SendingRecord& r = entry.second;  // not a structured binding: clang 14 cannot capture one
    const bool dup = std::any_of(pages.begin(), pages.end(), [&](const SendingRecord& p) {
      return p.intent.dedup_key == r.intent.dedup_key && p.intent.action == r.intent.action &&
             p.wall_ms == r.wall_ms;
    });
    if (!dup) pages.push_back(std::move(r));
  }
  {
    std::lock_guard lock(mu_);
    handed_off_ += pages.size();
    handoff_cleared_ += cleared;
    handoff_expired_ += expired;
    bad_records_ += bad;
  }
  if (!pages.empty()) {
    log_("ha: handing off " + std::to_string(pages.size()) +
         " page(s) a previous leader decided and did not deliver (first: " +
         action_word(pages.front().intent.action) + " '" + pages.front().intent.dedup_key +
         "' by " + pages.front().by + ")");
  }
  for (auto& p : pages)
    if (hooks_.submit) hooks_.submit(std::move(p.intent), p.wall_ms);
  return true;
}

std::string Node::log_key(const alert::OutboxEntry& e) const {
  return log_key(e.sink, e.intent.dedup_key);
}

std::string Node::log_key(const std::string& sink, const std::string& dedup_key) const {
  return config_.key_prefix + "log/" + sink + "/" + dedup_key;
}

std::string Node::sending_key(const alert::OutboxEntry& e) const {
  return sending_prefix_ + e.sink + "/" + e.intent.dedup_key + "/" + action_word(e.intent.action) +
         "@" + std::to_string(e.wall_ms);
}

bool Node::record_pages(const std::vector<alert::OutboxEntry>& batch, std::int64_t fence) {
  // etcd refuses a transaction of more than --max-txn-ops (default 128) operations.
  constexpr std::size_t kOpsPerTxn = 64;
  for (std::size_t i = 0; i < batch.size(); i += kOpsPerTxn) {
    std::vector<Etcd::Op> ops;
    for (std::size_t k = i; k < std::min(batch.size(), i + kOpsPerTxn); ++k) {
      const auto& e = batch[k];
      ops.push_back({sending_key(e), encode(SendingRecord{e.sink, config_.name, e.wall_ms, e.intent}),
                     false});
    }
    const auto ok = etcd_.txn(ops, leader_key_, fence);
    std::lock_guard lock(mu_);
    if (!ok) {
      role_.etcd_result(now(), false);
      return false;
    }
    if (!*ok) {
      ++fence_failures_;
      return false;  // deposed: before_send steps down on its own fenced write
    }
    ++fenced_writes_;
  }
  return true;
}

void Node::delete_records(const std::vector<alert::OutboxEntry>& batch) {
  constexpr std::size_t kOpsPerTxn = 64;
  for (std::size_t i = 0; i < batch.size(); i += kOpsPerTxn) {
    std::vector<Etcd::Op> ops;
    for (std::size_t k = i; k < std::min(batch.size(), i + kOpsPerTxn); ++k)
      ops.push_back({sending_key(batch[k]), "", true});
    // Not fenced: the page is settled. A lost delete leaves a record the next takeover finds
    // covered by the log (deleted) or sends once more (the one duplicate a failover may cost).
    if (!etcd_.txn(ops)) return;
  }
}

void Node::queued(const std::vector<alert::OutboxEntry>& batch) {
  std::int64_t fence = 0;
  {
    std::lock_guard lock(mu_);
    if (role_.role(now()) != RoleName::Leader) return;  // a follower holds; fail-open has no log
    fence = role_.fence();
  }
  if (fence != 0) record_pages(batch, fence);
}

void Node::dropped(const std::vector<alert::OutboxEntry>& batch) {
  {
    std::lock_guard lock(mu_);
    if (role_.role(now()) != RoleName::Leader) return;
  }
  delete_records(batch);
}

Gate Node::before_send(const std::vector<alert::OutboxEntry>& batch) {
  const core::MonoTime t = now();
  RoleName r;
  std::int64_t fence = 0;
  {
    std::lock_guard lock(mu_);
    r = role_.role(t);
    fence = role_.fence();
  }
  if (r == RoleName::FailOpen) {
    std::lock_guard lock(mu_);
    fail_open_sends_ += batch.size();
    return Gate::Send;
  }
  // Read the log: whatever is already sent (by us before a restart, by the peer) is not sent again.
  std::vector<std::pair<std::string, LogRecord>> records;
  bool all_covered = true;
  for (const auto& e : batch) {
    const std::string key = log_key(e);
    const auto kvs = etcd_.range(key);
    if (!kvs) {
      std::lock_guard lock(mu_);
      role_.etcd_result(t, false);
      return role_.fail_open(t) ? Gate::Send : Gate::Hold;
    }
    LogRecord rec;
    if (!kvs->empty()) {
      auto d = decode(kvs->front().value);
      if (d) {
        rec = std::move(*d);
      } else {
        std::lock_guard lock(mu_);
        ++bad_records_;
        log_("ha: notification log record '" + key + "' is not a v1 record; treated as empty");
      }
    }
    bool done = covered(rec, action_word(e.intent.action), e.wall_ms, config_.match_window);
    if (!done && !rec.sent.empty() && hooks_.later) {
      std::vector<LogItem> mine;
      for (const auto& [action, wall_ms] : hooks_.later(e.sink, e.intent.dedup_key, e.wall_ms))
        mine.push_back(LogItem{action_word(action), wall_ms, config_.name});
      done = superseded_by_own(rec, mine, config_.match_window);
    }
    if (!done) all_covered = false;
    records.emplace_back(key, std::move(rec));
  }
  if (all_covered) {
    {
      std::lock_guard lock(mu_);
      skipped_ += batch.size();
    }
    // Settled as sent by the peer (or superseded): a leader's record of it goes too.
    if (r == RoleName::Leader) delete_records(batch);
    return Gate::Skip;
  }
  if (r != RoleName::Leader) return Gate::Hold;
  // Fencing: the record goes in only while our election key is the one we created. A leader
  // paused past its lease resumes here, the compare fails, it steps down and sends nothing.
  // The whole page goes with it (sending/): if we die before a 2xx, the next leader sends it
  // even if it never decided it itself (a cold standby).
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto& [key, rec] = records[i];
    const auto& e = batch[i];
    rec.sending = LogItem{action_word(e.intent.action), e.wall_ms, config_.name};
    const std::string skey = sending_key(e);
    const auto ok = etcd_.txn(
        {{key, encode(rec), false},
         {skey, encode(SendingRecord{e.sink, config_.name, e.wall_ms, e.intent}), false}},
        leader_key_, fence);
    std::lock_guard lock(mu_);
    if (!ok) {
      role_.etcd_result(t, false);
      return Gate::Hold;
    }
    if (!*ok) {
      ++fence_failures_;
      role_.step_down();
      log_("ha: fenced write refused (the election key is no longer ours): stepping down, not "
           "sending");
      return Gate::Hold;
    }
    ++fenced_writes_;
    sending_[e.seq] = InFlight{key, skey, rec};
  }
  // One line per request: which instance sent which page (the failover test prints these when
  // it fails; pages are rare, so this is not a flood).
  if (!batch.empty())
    log_("ha: sending " + std::string(action_word(batch.front().intent.action)) + " '" +
         batch.front().intent.dedup_key + "' (decided " + std::to_string(batch.front().wall_ms) +
         ") to " + batch.front().sink +
         (batch.size() > 1 ? " and " + std::to_string(batch.size() - 1) + " more page(s)" : ""));
  return Gate::Send;
}

void Node::after_send(const std::vector<alert::OutboxEntry>& batch) {
  for (const auto& e : batch) {
    InFlight entry;
    {
      std::lock_guard lock(mu_);
      auto it = sending_.find(e.seq);
      if (it == sending_.end()) continue;  // sent fail-open: not in the log
      entry = std::move(it->second);
      sending_.erase(it);
    }
    mark_sent(entry.record);
    // Not fenced: it was sent. If this write is lost, the next leader resends it (the one
    // duplicate a failover may cost).
    etcd_.txn({{entry.log_key, encode(entry.record), false}, {entry.sending_key, "", true}});
  }
}

bool Node::leader() const {
  std::lock_guard lock(mu_);
  return role_.leader(now());
}

bool Node::may_publish() const { return role() != RoleName::Follower; }

RoleName Node::role() const {
  std::lock_guard lock(mu_);
  return role_.role(now());
}

std::string Node::metrics_text() const {
  std::lock_guard lock(mu_);
  const RoleName r = role_.role(now());
  std::string s;
  s += "# HELP presence_ha_role This instance's role in the HA pair (1 = current).\n";
  s += "# TYPE presence_ha_role gauge\n";
  for (auto each : {RoleName::Follower, RoleName::Leader, RoleName::FailOpen})
    s += std::string("presence_ha_role{role=\"") + to_string(each) + "\"} " +
         (each == r ? "1" : "0") + "\n";
  s += "# HELP presence_ha_peers Other instances registered in etcd.\n";
  s += "# TYPE presence_ha_peers gauge\n";
  std::size_t others = 0;
  for (const auto& m : members_) others += m.first != config_.name ? 1 : 0;
  s += "presence_ha_peers " + std::to_string(peers_.present() ? others : 0) + "\n";
  s += "# TYPE presence_ha_etcd_up gauge\n";
  s += std::string("presence_ha_etcd_up ") + (role_.failing_since() ? "0" : "1") + "\n";
  auto counter = [&s](const char* name, std::uint64_t v) {
    s += std::string("# TYPE ") + name + " counter\n" + name + " " + std::to_string(v) + "\n";
  };
  counter("presence_ha_elections_won_total", elections_won_);
  counter("presence_ha_fenced_writes_total", fenced_writes_);
  counter("presence_ha_fence_failures_total", fence_failures_);
  counter("presence_ha_sent_by_peer_total", skipped_);
  counter("presence_ha_fail_open_sends_total", fail_open_sends_);
  counter("presence_ha_etcd_errors_total", etcd_errors_);
  counter("presence_ha_bad_log_records_total", bad_records_);
  counter("presence_ha_handed_off_total", handed_off_);
  counter("presence_ha_handoff_cleared_total", handoff_cleared_);
  counter("presence_ha_handoff_expired_total", handoff_expired_);
  counter("presence_ha_adopt_offered_total", adopt_offered_);
  s += "# TYPE presence_ha_peer_down gauge\n";
  s += std::string("presence_ha_peer_down ") + (peer_page_open_ ? "1" : "0") + "\n";
  return s;
}

std::string Node::status_json() const {
  std::lock_guard lock(mu_);
  json j{{"v", 1},
         {"name", config_.name},
         {"role", to_string(role_.role(now()))},
         {"leader", holder_},
         {"etcd_up", !role_.failing_since().has_value()},
         {"peer_down", peer_page_open_},
         {"lease_ttl_ms", config_.timing.lease_ttl.count()}};
  j["members"] = json::array();
  for (const auto& [name, status] : members_) {
    json m = json::parse(status, nullptr, false);
    if (m.is_discarded()) m = json{{"name", name}};
    j["members"].push_back(m);
  }
  return j.dump();
}

}  // namespace presence::ha
