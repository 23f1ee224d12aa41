// One queued notification: an AlertIntent bound for one sink, as the outbox stores it.
#pragma once

#include <cstdint>
#include <string>

#include "presence/core/decision.h"

namespace presence::alert {

struct OutboxEntry {
  std::uint64_t seq = 0;  // outbox-wide, increasing; stable across restarts and compactions
  std::string sink;       // SinkConfig::name; the queue this entry belongs to
  core::AlertIntent intent;
  std::int64_t wall_ms = 0;  // intent.at on the wall clock (ms since the Unix epoch)
};

}  // namespace presence::alert
