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

const char* action_word(core::AlertIntent::Action a) {
  return a == core::AlertIntent::Action::Trigger ? "trigger" : "resolve";
}

// Requests to etcd are bounded well inside one keep-alive period, so a hung etcd never delays
// noticing that the lease is running out.
core::Duration request_timeout(const Timing& t) {
  return std::clamp<core::Duration>(t.lease_ttl / 4, std::chrono::milliseconds(200),
                                    std::chrono::milliseconds(2000));
}

}  // namespace

Node::Node(NodeConfig config, std::function<void(core::AlertIntent)> submit)
    : config_(std::move(config)),
      log_(common::or_stderr(config_.log)),
      submit_(std::move(submit)),
      etcd_(config_.endpoints, request_timeout(config_.timing)),
      leader_key_(config_.key_prefix + "leader"),
      members_prefix_(config_.key_prefix + "members/"),
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
  const auto period = std::max<core::Duration>(config_.timing.lease_ttl / 3,
                                               std::chrono::milliseconds(100));
  for (;;) {
    step(now());
    std::unique_lock lock(wake_mu_);
    if (wake_.wait_for(lock, period, [&] { return stopping_; })) return;
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
  for (auto& p : pages) submit_(std::move(p));
}

std::string Node::log_key(const alert::OutboxEntry& e) const {
  return config_.key_prefix + "log/" + e.sink + "/" + e.intent.dedup_key;
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
    if (!covered(rec, action_word(e.intent.action), e.wall_ms, config_.match_window))
      all_covered = false;
    records.emplace_back(key, std::move(rec));
  }
  if (all_covered) {
    std::lock_guard lock(mu_);
    skipped_ += batch.size();
    return Gate::Skip;
  }
  if (r != RoleName::Leader) return Gate::Hold;
  // Fencing: the record goes in only while our election key is the one we created. A leader
  // paused past its lease resumes here, the compare fails, it steps down and sends nothing.
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto& [key, rec] = records[i];
    rec.sending = LogItem{action_word(batch[i].intent.action), batch[i].wall_ms, config_.name};
    const auto ok = etcd_.put_fenced(leader_key_, fence, key, encode(rec));
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
    sending_[batch[i].seq] = {key, rec};
  }
  return Gate::Send;
}

void Node::after_send(const std::vector<alert::OutboxEntry>& batch) {
  for (const auto& e : batch) {
    std::pair<std::string, LogRecord> entry;
    {
      std::lock_guard lock(mu_);
      auto it = sending_.find(e.seq);
      if (it == sending_.end()) continue;  // sent fail-open: not in the log
      entry = std::move(it->second);
      sending_.erase(it);
    }
    mark_sent(entry.second);
    // Not fenced: it was sent. If this write is lost, the next leader resends it (the one
    // duplicate a failover may cost).
    etcd_.put(entry.first, encode(entry.second));
  }
}

bool Node::leader() const {
  std::lock_guard lock(mu_);
  return role_.leader(now());
}

bool Node::may_publish() const {
  std::lock_guard lock(mu_);
  return role_.role(now()) != RoleName::Follower;
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
