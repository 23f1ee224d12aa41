#include "presence/ingest/blind_spots.h"

namespace presence::ingest {

using core::EventKind;

BlindSpots::Kinds BlindSpots::connection_lost() {
  if (!up_) return {};
  up_ = false;
  reported_ = false;
  return {EventKind::IngestLost};
}

void BlindSpots::connack(bool session_present) {
  // We had a persistent session and the broker no longer knows it: it restarted without
  // persistence (or lost its state). A clean session never has one, so it tells us nothing.
  if (persistent_ && ever_up_ && !session_present) evidence_ = "persistent session lost";
}

BlindSpots::Kinds BlindSpots::subscribed() {
  if (up_) return {};
  up_ = true;
  ever_up_ = true;
  Kinds out{EventKind::IngestRestored};
  if (!evidence_.empty()) {
    const std::string why = evidence_;
    evidence_.clear();
    for (auto k : restarted(why.c_str())) out.push_back(k);
  }
  return out;
}

BlindSpots::Kinds BlindSpots::restarted(const char* why) {
  if (reported_) return {};  // several signals, one restart
  reported_ = true;
  ++restarts_;
  last_reason_ = why;
  return {EventKind::BrokerRestarted};
}

BlindSpots::Kinds BlindSpots::boot(std::string_view node, std::string_view boot_id) {
  auto [it, inserted] = boot_.try_emplace(std::string(node), std::string(boot_id));
  if (inserted || it->second != boot_id) {
    it->second = std::string(boot_id);
    epoch_[std::string(node)] = next_epoch_++;
  }
  if (watch_.on_boot(node, boot_id)) return restarted("broker-ext boot id changed");
  return {};
}

BlindSpots::Kinds BlindSpots::uptime(std::string_view node, std::uint64_t seconds) {
  if (watch_.on_uptime(node, seconds)) return restarted("$SYS uptime reset");
  return {};
}

std::uint64_t BlindSpots::session(std::string_view node, std::uint64_t per_boot_session) const {
  if (per_boot_session == 0) return 0;  // unknown: order by arrival
  auto it = epoch_.find(std::string(node));
  const std::uint64_t epoch = it == epoch_.end() ? 0 : it->second;
  return (epoch << kBootEpochShift) | (per_boot_session & ((1ull << kBootEpochShift) - 1));
}

}  // namespace presence::ingest
