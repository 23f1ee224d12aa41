#include "presence/ingest/hygiene.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <map>

namespace presence::ingest {

namespace {

constexpr std::size_t kMaxTopicBytes = 200;

std::string seconds_text(core::Duration d) {
  const auto ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

bool is_status(const Parsed& p) { return p.topic_kind == TopicKind::Status; }
bool from_broker(const Parsed& p) {
  return p.source == core::Source::BrokerExt || p.source == core::Source::Emqx;
}

}  // namespace

bool HygieneObserver::looks_random(std::string_view id) {
  if (id.empty()) return false;
  auto lower = [](std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  const std::string l = lower(id);
  // Default ids of common client libraries and tools: a fixed prefix plus random characters.
  for (const char* prefix : {"paho", "mqttjs_", "mosq-", "mosqpub|", "mosqsub|", "mqttx_",
                             "auto-", "esp8266-", "nodered_"}) {
    const std::string_view p(prefix);
    if (l.size() > p.size() + 3 && l.compare(0, p.size(), p) == 0) {
      const std::string_view rest = std::string_view(l).substr(p.size());
      std::size_t mixed = 0;
      for (char c : rest) mixed += std::isxdigit(static_cast<unsigned char>(c)) ? 1 : 0;
      if (mixed * 4 >= rest.size() * 3) return true;
    }
  }
  // A UUID or a long run of hex digits with both letters and digits (a MAC address of 12 hex
  // digits is a stable id, so only runs of 16 or more count).
  std::size_t run = 0, best = 0;
  bool letter = false, digit = false, best_mixed = false;
  for (char c : l) {
    if (std::isxdigit(static_cast<unsigned char>(c))) {
      ++run;
      letter |= std::isalpha(static_cast<unsigned char>(c)) != 0;
      digit |= std::isdigit(static_cast<unsigned char>(c)) != 0;
      if (run > best) {
        best = run;
        best_mixed = letter && digit;
      }
    } else if (c != '-') {
      run = 0;
      letter = digit = false;
    }
  }
  return best >= 16 && best_mixed;
}

HygieneObserver::Device* HygieneObserver::find_or_add(std::string_view id, core::MonoTime now) {
  if (id.empty()) return nullptr;
  auto it = devices_.find(id);
  if (it != devices_.end()) return &it->second;
  if (devices_.size() >= max_devices_) {
    ++dropped_;
    return nullptr;
  }
  Device d;
  d.first_seen = now;
  return &devices_.emplace(std::string(id), std::move(d)).first->second;
}

void HygieneObserver::set_device_class(std::string_view id, std::uint8_t device_class) {
  auto it = devices_.find(id);
  if (it != devices_.end()) it->second.device_class = device_class;
}

void HygieneObserver::observe(const Parsed& p, std::string_view topic, bool retained,
                              core::MonoTime now) {
  if (p.what == Parsed::What::ClientList) {
    // Start-up reconciliation: each listed client is connected now.
    list_seen_ = true;
    for (const auto& id : p.ids) {
      Device* d = find_or_add(id, now);
      if (d == nullptr) continue;
      d->broker_knows = true;
      if (!d->connected) ++d->sessions;
      d->connected = true;
    }
    return;
  }
  if (p.what != Parsed::What::DeviceEvent && p.what != Parsed::What::DeviceResync) return;
  Device* d = find_or_add(p.id, now);
  if (d == nullptr) return;
  if (p.device_class != 0) d->device_class = p.device_class;
  if (from_broker(p)) {
    d->broker_knows = true;
    if (p.kind == core::EventKind::Connected) {
      // A disconnect still waiting for its will when the client is back: judge it now.
      if (d->disconnect_pending) {
        ++d->missed_wills;
        d->disconnect_pending = false;
      }
      ++d->sessions;
      d->connected = true;
      if (p.keepalive >= 0) d->keepalive = p.keepalive;
    } else if (p.kind == core::EventKind::Disconnected &&
               p.reason != core::DisconnectReason::Takeover) {
      ++d->disconnects;
      d->connected = false;
      d->last_disconnect = now;
      if (d->wills > 0 && now - d->last_will <= will_wait_) {
        ++d->wills_after_disconnect;  // the will came first
        d->disconnect_pending = false;
      } else {
        d->disconnect_pending = true;
      }
    }
    return;
  }
  if (p.source_index < 64) d->sources |= std::uint64_t{1} << p.source_index;
  if (p.topic_kind == TopicKind::Heartbeat) {
    ++d->heartbeats;
    return;
  }
  if (!is_status(p)) return;
  const std::string t(topic.substr(0, kMaxTopicBytes));
  if (retained) {
    // The broker's retained copy, replayed when presenced subscribed: what a dashboard or a new
    // subscriber is told about this device right now.
    d->replay_online = p.kind == core::EventKind::Connected;
    d->replay_offline = p.kind == core::EventKind::Disconnected;
    if (p.kind == core::EventKind::Connected) d->birth_topic = t;
    if (p.kind == core::EventKind::Disconnected) d->will_topic = t;
    return;
  }
  if (p.kind == core::EventKind::Connected) {
    ++d->births;
    d->birth_topic = t;
    // A live birth replaces the retained state (if it is retained itself; we cannot see that
    // on live traffic, the next replay will tell).
  } else if (p.kind == core::EventKind::Disconnected) {
    ++d->wills;
    d->will_topic = t;
    d->last_will = now;
    if (d->disconnect_pending && now - d->last_disconnect <= will_wait_) {
      ++d->wills_after_disconnect;
      d->disconnect_pending = false;
    }
  }
}

HygieneReport HygieneObserver::analyze(const HygieneRules& rules, core::MonoTime now,
                                       std::size_t limit) const {
  HygieneReport r;
  r.devices_checked = devices_.size();
  r.devices_dropped = dropped_;
  std::map<std::string, std::size_t> counts;
  for (const char* c : kHygieneChecks) counts[c] = 0;
  std::vector<HygieneFinding> all;
  auto add = [&](const std::string& id, const char* check, std::string problem, std::string fix) {
    ++counts[check];
    all.push_back(HygieneFinding{id, check, std::move(problem), std::move(fix)});
  };
  auto source_name = [&](std::size_t i) {
    if (i < rules.source_names.size() && !rules.source_names[i].empty())
      return rules.source_names[i];
    return i == 0 ? std::string("topics") : "sources[" + std::to_string(i - 1) + "]";
  };
  auto ceiling_of = [&](std::uint8_t cls) {
    core::Duration c = rules.core.heartbeat_timeout_ceiling;
    if (cls != 0 && cls <= rules.core.device_classes.size()) {
      const auto& dc = rules.core.device_classes[cls - 1];
      if (dc.heartbeat_timeout_ceiling.count() > 0) c = dc.heartbeat_timeout_ceiling;
    }
    return c;
  };

  for (const auto& [id, d] : devices_) {
    std::uint32_t missed = d.missed_wills;
    if (d.disconnect_pending && now - d.last_disconnect >= rules.will_wait) ++missed;
    const bool has_status = d.births + d.wills > 0 || d.replay_online || d.replay_offline;

    // The broker saw it come and go, but no status message ever reached presenced: either it has
    // no birth/will at all or they are on a topic no status pattern matches.
    if (rules.status_patterns && d.broker_knows && d.disconnects > 0 && !has_status &&
        missed > 0) {
      add(id, "will_topic_unmatched",
          "the broker saw " + std::to_string(d.disconnects) +
              " disconnect(s) but presenced never received a birth or will for this client: it "
              "has no last will, or its will/birth topic matches no status pattern",
          "give the client a last will ('offline', retain) on a topic a status pattern matches, "
          "e.g. devices/" + id + "/status, or add its topic to topics.status / a source");
    } else if (has_status && d.disconnects > 0 && missed > 0 && d.wills_after_disconnect == 0) {
      add(id, "no_last_will",
          "0 of " + std::to_string(d.disconnects) +
              " disconnect(s) seen by the broker were followed by an 'offline' status within " +
              seconds_text(rules.will_wait) +
              ": the device has no last will (or only ever disconnects cleanly without "
              "publishing 'offline')",
          "set a last will on " + (d.birth_topic.empty() ? std::string("its status topic")
                                                         : d.birth_topic) +
              ": payload 'offline', retain true, QoS 1 (Tasmota: default; ESPHome: mqtt: "
              "will_message:; Paho: MQTTClient_willOptions)");
    }

    // Will retained, birth not: after a reconnect the retained state still says offline.
    if (d.replay_offline && d.connected && d.broker_knows) {
      add(id, "birth_not_retained",
          "the broker lists the client as connected, but the retained status it replays says "
          "offline: the will is retained and the birth is not, so every new subscriber (and "
          "presenced after a restart) sees it offline",
          "publish the birth ('online') with retain true on the same topic as the will" +
              (d.will_topic.empty() ? std::string() : " (" + d.will_topic + ")"));
    }
    // Birth retained, will not (or none): a dead device stays "online" for new subscribers.
    if (d.replay_online && (d.broker_knows || list_seen_) && !d.connected) {
      add(id, "stale_retained_online",
          "the retained status says online but the broker reports the client disconnected: its "
          "will is missing or not retained, so the old birth stays",
          "set the last will with retain true on the birth's topic" +
              (d.birth_topic.empty() ? std::string() : " (" + d.birth_topic + ")"));
    }
    if (!d.birth_topic.empty() && !d.will_topic.empty() && d.birth_topic != d.will_topic) {
      add(id, "birth_will_topics_differ",
          "birth on '" + d.birth_topic + "', will on '" + d.will_topic +
              "': a retained birth on one topic is never replaced by the will on the other",
          "publish birth and will on one topic (e.g. " + d.birth_topic + "), retained");
    }
    if (d.keepalive > 0) {
      const core::Duration broker_notice{static_cast<std::int64_t>(d.keepalive) * 1500};
      const core::Duration ceiling = ceiling_of(d.device_class);
      if (ceiling.count() > 0 && broker_notice > ceiling) {
        add(id, "keepalive_too_long",
            "keepalive " + std::to_string(d.keepalive) +
                " s: the broker notices a dead connection (and sends the will) only after 1.5 x "
                "keepalive = " + seconds_text(broker_notice) +
                ", later than the heartbeat timeout ceiling " + seconds_text(ceiling) +
                " presenced judges it by",
            "set the client's keepalive to at most " +
                std::to_string(ceiling.count() / 1500) +
                " s (ESPHome: mqtt: keepalive:; Paho: keepAliveInterval), or give its class a "
                "longer heartbeat_timeout_ceiling");
      }
    }
    if (rules.heartbeat_patterns && d.births > 0 && d.heartbeats == 0 &&
        now - d.first_seen >= ceiling_of(d.device_class)) {
      add(id, "births_without_heartbeats",
          std::to_string(d.births) + " birth(s) but no heartbeat in " +
              seconds_text(now - d.first_seen) +
              ": presenced judges it by its session alone (a hung device that keeps its TCP "
              "connection stays online)",
          "publish a heartbeat (e.g. devices/" + id +
              "/heartbeat every 60 s), or add the topic it already publishes on to "
              "topics.heartbeat");
    }
    if (std::popcount(d.sources) >= 2) {
      std::string names;
      for (std::size_t i = 0; i < 64; ++i)
        if (d.sources & (std::uint64_t{1} << i)) names += (names.empty() ? "" : ", ") + source_name(i);
      add(id, "id_in_two_sources",
          "messages for this id arrive through several sources (" + names +
              "): two devices share the id, or two presets claim its topics",
          "give each source its own id space (a static label and a distinct topic prefix), or "
          "remove the duplicate source");
    }
    if (looks_random(id) && d.sessions <= 1 && !d.connected && d.broker_knows) {
      add(id, "random_client_id_churn",
          "the client id looks generated at random and was seen for one session only: each "
          "reconnect becomes a new device, the old one waits to be forgotten",
          "give the client a fixed id (e.g. its MAC or serial: Tasmota Topic, ESPHome "
          "name, Paho clientId)");
    }
  }
  std::sort(all.begin(), all.end(), [](const HygieneFinding& a, const HygieneFinding& b) {
    return a.id != b.id ? a.id < b.id : a.check < b.check;
  });
  if (all.size() > limit) {
    all.resize(limit);
    r.truncated = true;
  }
  r.findings = std::move(all);
  for (const char* c : kHygieneChecks) r.counts.emplace_back(c, counts[c]);
  return r;
}

}  // namespace presence::ingest
