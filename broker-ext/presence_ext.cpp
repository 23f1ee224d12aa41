#include "broker-ext/presence_ext.h"

#include <algorithm>

#include "broker-ext/encode.h"

namespace presence::broker_ext {

namespace {
std::string u64(std::uint64_t v) { return std::to_string(v); }
std::string i64(std::int64_t v) { return std::to_string(v); }
}  // namespace

std::string client_topic(const std::string& prefix, const std::string& client_id,
                         const char* what) {
  return prefix + "/clients/" + encode_topic_level(client_id) + "/" + what;
}

PresenceExt::PresenceExt(Options options, std::string boot_id, std::string plugin_version,
                         std::string broker_version, Now now)
    : options_(std::move(options)),
      boot_id_(std::move(boot_id)),
      plugin_version_(std::move(plugin_version)),
      broker_version_(std::move(broker_version)),
      start_(now),
      next_heartbeat_ms_(now.mono_ms),
      last_refusal_log_ms_(now.mono_ms - options_.refusal_log_interval_ms) {
  if (options_.connect_rate > 0) {
    bucket_.emplace(options_.connect_rate, options_.connect_burst, now.mono_ms);
  }
  if (options_.flap_max_count > 0) {
    flap_.emplace(options_.flap_max_count, options_.flap_window_ms, options_.flap_ban_ms,
                  static_cast<std::size_t>(options_.flap_max_clients));
  }
  if (options_.aggregation()) {
    heartbeat_pattern_ = HeartbeatPattern::parse(options_.heartbeat_topic, nullptr);
    if (heartbeat_pattern_) {  // validated by parse_options; an invalid one leaves it off
      alive_.emplace(options_.topic_prefix + "/alive", options_.node, boot_id_,
                     static_cast<std::size_t>(options_.alive_max_bytes));
      next_alive_ms_ = now.mono_ms + options_.alive_interval_ms;
    }
  }
}

void PresenceExt::push_alive(Output& out) {
  for (auto& p : alive_flushed_) {
    ++counters_.alive_messages;
    out.messages.push_back(Message{alive_->topic(), std::move(p), false, 0});
  }
  alive_flushed_.clear();
}

void PresenceExt::on_message(std::string_view topic, Output& out) {
  if (!heartbeat_pattern_) return;
  std::string_view id;
  switch (heartbeat_pattern_->match(topic, &id)) {
    case HeartbeatPattern::Match::no: return;
    case HeartbeatPattern::Match::bad_id: ++counters_.heartbeats_rejected; return;
    case HeartbeatPattern::Match::id: break;
  }
  ++counters_.heartbeats_seen;
  alive_->add(id, alive_flushed_);
  if (!alive_flushed_.empty()) push_alive(out);
}

void PresenceExt::on_clients_request(Now now, Output& out) {
  // Confirmed sessions only: a pending connection may still be refused by the auth chain.
  std::vector<std::pair<const std::string*, std::uint64_t>> live;
  live.reserve(latest_session_.size());
  for (const auto& [id, session] : latest_session_) live.emplace_back(&id, session);
  const std::size_t parts = std::max<std::size_t>(1, (live.size() + kClientsPerPart - 1) / kClientsPerPart);
  for (std::size_t part = 0; part < parts; ++part) {
    std::string p = base_fields(++seq_);
    p += ",\"node\":";
    append_json_string(p, options_.node);
    p += ",\"ts\":" + i64(now.unix_ms);
    p += ",\"part\":" + u64(part + 1) + ",\"parts\":" + u64(parts) + ",\"clients\":[";
    const std::size_t end = std::min(live.size(), (part + 1) * kClientsPerPart);
    for (std::size_t i = part * kClientsPerPart; i < end; ++i) {
      if (i != part * kClientsPerPart) p += ',';
      p += "{\"clientid\":";
      append_json_string(p, *live[i].first);
      p += ",\"session\":" + u64(live[i].second) + "}";
    }
    p += "]}";
    out.messages.push_back({options_.topic_prefix + "/clients", std::move(p), false, -1});
  }
}

std::string PresenceExt::base_fields(std::uint64_t seq) const {
  return "{\"v\":1,\"boot\":\"" + boot_id_ + "\",\"seq\":" + u64(seq);
}

Message PresenceExt::boot_message() {
  std::string p = base_fields(++seq_);
  p += ",\"node\":";
  append_json_string(p, options_.node);
  p += ",\"ts\":" + i64(start_.unix_ms);
  p += ",\"plugin\":";
  append_json_string(p, plugin_version_);
  p += ",\"mosquitto_api\":";
  append_json_string(p, broker_version_);
  p += ",\"heartbeat_interval_ms\":" + i64(options_.heartbeat_interval_ms);
  p += ",\"basic_auth\":\"";
  p += options_.basic_auth == BasicAuth::defer ? "defer" : "off";
  p += "\",\"heartbeat_topic\":";
  append_json_string(p, options_.heartbeat_topic);
  if (alive_) p += ",\"alive_interval_ms\":" + i64(options_.alive_interval_ms);
  p += "}";
  return Message{options_.topic_prefix + "/boot", std::move(p), true};
}

AuthVerdict PresenceExt::on_basic_auth(const void* conn, const ClientInfo& info, Now now,
                                       Output& out) {
  // On SIGHUP, Mosquitto re-runs the auth chain for every connected client
  // (security_default.c, mosquitto_security_apply_default). That is not a new connection.
  if (auto it = conns_.find(conn); it != conns_.end()) return AuthVerdict::defer;

  // Storm protection refuses before the (possibly expensive, PBKDF2) password check, and before
  // any session takeover: a refused client never disturbs the session it tried to replace.
  if (flap_) {
    switch (flap_->on_connect(info.client_id, now.mono_ms)) {
      case FlapBan::Admission::admit: break;
      case FlapBan::Admission::untracked: ++counters_.flap_untracked; break;
      case FlapBan::Admission::refuse_banned:
        refusal(false, false, info.client_id, now, out);
        return AuthVerdict::refuse;
      case FlapBan::Admission::refuse_new_ban:
        refusal(false, true, info.client_id, now, out);
        return AuthVerdict::refuse;
    }
  }
  if (bucket_ && !bucket_->try_take(now.mono_ms)) {
    refusal(true, false, info.client_id, now, out);
    return AuthVerdict::refuse;
  }

  Conn c;
  c.info = info;
  c.auth_unix_ms = now.unix_ms;
  c.attempt = ++attempts_;
  pending_.emplace_back(conn, c.attempt);
  ++pending_ids_[info.client_id];
  conns_.emplace(conn, std::move(c));
  return AuthVerdict::defer;
}

void PresenceExt::confirm(const void* conn, Conn& c, Output& out) {
  (void)conn;
  if (auto it = pending_ids_.find(c.info.client_id); it != pending_ids_.end()) {
    if (--it->second <= 0) pending_ids_.erase(it);
  }
  const std::uint64_t seq = ++seq_;
  c.session = seq;
  latest_session_[c.info.client_id] = seq;
  ++live_;
  ++counters_.connects;

  std::string p = base_fields(seq);
  p += ",\"session\":" + u64(seq);
  p += ",\"clientid\":";
  append_json_string(p, c.info.client_id);
  p += ",\"username\":";
  if (c.info.username) {
    append_json_string(p, *c.info.username);
  } else {
    p += "null";
  }
  p += ",\"address\":";
  append_json_string(p, c.info.address);
  p += ",\"protocol\":" + i64(c.info.protocol_version);
  p += ",\"keepalive\":" + i64(c.info.keepalive);
  p += ",\"clean\":";
  p += c.info.clean_start ? "true" : "false";
  p += ",\"ts\":" + i64(c.auth_unix_ms) + "}";
  out.messages.push_back(
      Message{client_topic(options_.topic_prefix, c.info.client_id, "connected"), std::move(p),
              false});
}

void PresenceExt::confirm_pending_of(const std::string& client_id, Output& out) {
  if (pending_ids_.find(client_id) == pending_ids_.end()) return;
  for (const auto& [conn, attempt] : pending_) {
    auto it = conns_.find(conn);
    if (it == conns_.end() || it->second.attempt != attempt || it->second.session != 0) continue;
    if (it->second.info.client_id == client_id) confirm(conn, it->second, out);
  }
}

void PresenceExt::publish_disconnected(const std::string& client_id, std::uint64_t session,
                                       bool superseded, Now now, Output& out) {
  ++counters_.disconnects;
  std::string p = base_fields(++seq_);
  p += ",\"session\":" + u64(session);
  p += ",\"clientid\":";
  append_json_string(p, client_id);
  p += ",\"superseded\":";
  p += superseded ? "true" : "false";
  p += ",\"ts\":" + i64(now.unix_ms) + "}";
  out.messages.push_back(Message{client_topic(options_.topic_prefix, client_id, "disconnected"),
                                 std::move(p), false});
}

void PresenceExt::on_disconnect(const void* conn, const char* client_id, Now now, Output& out) {
  auto it = conns_.find(conn);
  if (it == conns_.end()) {
    if (client_id == nullptr) {
      // A socket that never completed CONNECT (half-open, port probe, refused before auth).
      ++counters_.unidentified_disconnects;
      return;
    }
    // Connected without the basic-auth chain (MQTT 5 extended auth, TLS identity as username,
    // or basic_auth off): we never saw its connect, so its session is unknown (0). It is stale
    // if a session we did see now owns the client id.
    const std::string id(client_id);
    confirm_pending_of(id, out);
    publish_disconnected(id, 0, latest_session_.count(id) != 0, now, out);
    return;
  }

  Conn& c = it->second;
  if (c.session == 0) {
    if (client_id == nullptr) {
      // Refused by the broker's auth chain (it frees the id before disconnecting): no session
      // existed, and the connection it wanted to take over is untouched. No event.
      if (auto p = pending_ids_.find(c.info.client_id); p != pending_ids_.end()) {
        if (--p->second <= 0) pending_ids_.erase(p);
      }
      ++counters_.auth_refused;
      conns_.erase(it);
      return;
    }
    // Accepted and gone within the same loop iteration: connected, then disconnected.
    confirm(conn, c, out);
  }
  const std::string id = c.info.client_id;
  const std::uint64_t session = c.session;
  conns_.erase(it);
  confirm_pending_of(id, out);  // takeover: the new connection was accepted before this

  bool superseded = false;
  if (auto l = latest_session_.find(id); l != latest_session_.end()) {
    if (session < l->second) {
      superseded = true;
    } else {
      latest_session_.erase(l);
    }
  }
  --live_;
  publish_disconnected(id, session, superseded, now, out);
}

void PresenceExt::on_tick(Now now, Output& out, StillIdentified still_identified) {
  std::vector<std::pair<const void*, std::uint64_t>> keep;
  for (const auto& [conn, attempt] : pending_) {
    auto it = conns_.find(conn);
    if (it == conns_.end() || it->second.attempt != attempt || it->second.session != 0) continue;
    if (still_identified != nullptr && !still_identified(conn)) {
      keep.emplace_back(conn, attempt);
      continue;
    }
    confirm(conn, it->second, out);
  }
  pending_.swap(keep);
  pending_ids_.clear();
  for (const auto& [conn, attempt] : pending_) ++pending_ids_[conns_.at(conn).info.client_id];

  if (alive_ && now.mono_ms >= next_alive_ms_) {
    next_alive_ms_ += options_.alive_interval_ms;
    if (next_alive_ms_ <= now.mono_ms) next_alive_ms_ = now.mono_ms + options_.alive_interval_ms;
    alive_->flush(alive_flushed_);
    push_alive(out);
  }

  if (now.mono_ms >= next_heartbeat_ms_) {
    // Fixed cadence; after a stall (the broker loop was blocked) restart from now rather than
    // bursting the missed beats.
    next_heartbeat_ms_ += options_.heartbeat_interval_ms;
    if (next_heartbeat_ms_ <= now.mono_ms) next_heartbeat_ms_ = now.mono_ms + options_.heartbeat_interval_ms;
    if (flap_) banned_clients_ = flap_->sweep(now.mono_ms);

    std::string p = base_fields(++seq_);
    p += ",\"ts\":" + i64(now.unix_ms);
    p += ",\"uptime_ms\":" + i64(now.mono_ms - start_.mono_ms);
    p += ",\"interval_ms\":" + i64(options_.heartbeat_interval_ms);
    p += ",\"clients\":" + u64(live_);
    p += ",\"connects\":" + u64(counters_.connects);
    p += ",\"disconnects\":" + u64(counters_.disconnects);
    p += ",\"refused_rate_limited\":" + u64(counters_.refused_rate_limited);
    p += ",\"refused_flap_banned\":" + u64(counters_.refused_flap_banned);
    p += ",\"banned_clients\":" + u64(banned_clients_);
    p += ",\"flap_untracked\":" + u64(counters_.flap_untracked);
    p += ",\"auth_refused\":" + u64(counters_.auth_refused);
    p += ",\"unidentified_disconnects\":" + u64(counters_.unidentified_disconnects);
    p += ",\"publish_errors\":" + u64(counters_.publish_errors);
    p += ",\"heartbeats_seen\":" + u64(counters_.heartbeats_seen);
    p += ",\"heartbeats_rejected\":" + u64(counters_.heartbeats_rejected);
    p += ",\"alive_messages\":" + u64(counters_.alive_messages);
    p += ",\"alive_ids_dropped\":" + u64(alive_ ? alive_->ids_dropped() : 0);
    p += "}";
    out.messages.push_back(Message{options_.topic_prefix + "/heartbeat", std::move(p), false});
  }
  flush_refusal_log(now, out);
}

void PresenceExt::refusal(bool rate_limited, bool new_ban, const std::string& client_id, Now now,
                          Output& out) {
  if (rate_limited) {
    ++counters_.refused_rate_limited;
    ++log_rate_limited_;
  } else {
    ++counters_.refused_flap_banned;
    ++log_flap_banned_;
  }
  if (new_ban) ++log_new_bans_;
  log_last_client_ = client_id.size() > 128 ? client_id.substr(0, 128) + "..." : client_id;
  flush_refusal_log(now, out);
}

void PresenceExt::flush_refusal_log(Now now, Output& out) {
  const std::uint64_t n = log_rate_limited_ + log_flap_banned_;
  if (n == 0 || now.mono_ms - last_refusal_log_ms_ < options_.refusal_log_interval_ms) return;
  std::string text = "presence: refused " + u64(n) + " connect attempt(s) since the last report (" +
                     "rate_limited=" + u64(log_rate_limited_) +
                     " flap_banned=" + u64(log_flap_banned_) + " new_bans=" + u64(log_new_bans_) +
                     "); last client id ";
  append_json_string(text, log_last_client_);
  out.logs.push_back(LogLine{LogLevel::notice, std::move(text)});
  last_refusal_log_ms_ = now.mono_ms;
  log_rate_limited_ = log_flap_banned_ = log_new_bans_ = 0;
}

}  // namespace presence::broker_ext
