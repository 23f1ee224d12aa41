// The pure rules of the per-device state machine: session ordering and the adaptive heartbeat
// timeout (presence/core/device_state.*).
#include "presence/core/device_state.h"

#include <doctest/doctest.h>

using namespace presence::core;

TEST_CASE("the device record stays compact") {
  // issue 2: <= 100 B per device beyond the id bytes, with the 16-byte timer node and the id
  // table's ~4-11 bytes.
  CHECK(sizeof(DeviceRecord) == 64);
}

TEST_CASE("judge: session ordering") {
  using K = EventKind;
  using R = DisconnectReason;
  // No session known, or none on the event: by arrival.
  CHECK(judge(K::Connected, R::Unknown, 0, false, 5) == SessionCheck::Accept);
  CHECK(judge(K::Disconnected, R::LastWill, 7, false, 0) == SessionCheck::Accept);
  // Newer session: accept.
  CHECK(judge(K::Connected, R::Unknown, 7, false, 8) == SessionCheck::Accept);
  CHECK(judge(K::Disconnected, R::LastWill, 7, false, 8) == SessionCheck::Accept);
  CHECK(judge(K::Heartbeat, R::Unknown, 7, true, 8) == SessionCheck::Accept);
  // Older session: stale, whatever the kind.
  CHECK(judge(K::Connected, R::Unknown, 7, false, 6) == SessionCheck::Stale);
  CHECK(judge(K::Disconnected, R::KeepaliveTimeout, 7, false, 6) == SessionCheck::Stale);
  CHECK(judge(K::Heartbeat, R::Unknown, 7, false, 6) == SessionCheck::Stale);
  // Same session.
  CHECK(judge(K::Connected, R::Unknown, 7, false, 7) == SessionCheck::Duplicate);
  // A connect after its own disconnect.
  CHECK(judge(K::Connected, R::Unknown, 7, true, 7) == SessionCheck::Stale);
  CHECK(judge(K::Disconnected, R::Graceful, 7, false, 7) == SessionCheck::Accept);
  CHECK(judge(K::Disconnected, R::Graceful, 7, true, 7) == SessionCheck::Duplicate);
  CHECK(judge(K::Heartbeat, R::Unknown, 7, false, 7) == SessionCheck::Accept);
  CHECK(judge(K::Heartbeat, R::Unknown, 7, true, 7) == SessionCheck::Stale);
  // Takeover never departs, whatever the sessions say.
  CHECK(judge(K::Disconnected, R::Takeover, 7, false, 7) == SessionCheck::Takeover);
  CHECK(judge(K::Disconnected, R::Takeover, 0, false, 0) == SessionCheck::Takeover);
  CHECK(judge(K::Disconnected, R::Takeover, 7, false, 9) == SessionCheck::Takeover);
}

TEST_CASE("heartbeat_timeout: factor x mean, floor, ceiling, young devices") {
  Config c;  // factor 3, floor 15 s, ceiling 30 min, default 60 s, min samples 3
  using std::chrono::seconds;
  CHECK(heartbeat_timeout(c, 0, 0) == c.heartbeat_timeout_ceiling);
  // Fewer than min samples: max(default, mean).
  CHECK(heartbeat_timeout(c, 10000, 1) == seconds(180));
  CHECK(heartbeat_timeout(c, 300000, 2) == seconds(900));
  // Enough samples: the device's own mean.
  CHECK(heartbeat_timeout(c, 10000, 3) == seconds(30));
  CHECK(heartbeat_timeout(c, 300000, 3) == seconds(900));
  // Floor at T-1 / T / T+1 of the factor x mean product.
  CHECK(heartbeat_timeout(c, 4999, 3) == seconds(15));
  CHECK(heartbeat_timeout(c, 5000, 3) == seconds(15));
  CHECK(heartbeat_timeout(c, 5001, 3) == Duration{15003});
  // Ceiling.
  CHECK(heartbeat_timeout(c, 599999, 3) == Duration{1799997});
  CHECK(heartbeat_timeout(c, 600000, 3) == c.heartbeat_timeout_ceiling);
  CHECK(heartbeat_timeout(c, 600001, 3) == c.heartbeat_timeout_ceiling);
}

TEST_CASE("heartbeat_mean_update: first sample sets, then EWMA 1/4, clamped to the ceiling") {
  Config c;
  CHECK(heartbeat_mean_update(c, 0, 0, 10000) == 10000);
  CHECK(heartbeat_mean_update(c, 10000, 1, 14000) == 11000);
  CHECK(heartbeat_mean_update(c, 10000, 1, 6000) == 9000);
  CHECK(heartbeat_mean_update(c, 0, 0, 0) == 1);
  CHECK(heartbeat_mean_update(c, 0, 0, 24LL * 3600 * 1000) ==
        static_cast<std::uint32_t>(c.heartbeat_timeout_ceiling.count()));
  // A device whose period changes from 10 s to 5 min converges.
  std::uint32_t m = 10000;
  for (int i = 0; i < 20; ++i) m = heartbeat_mean_update(c, m, 5, 300000);
  CHECK(m > 290000);
}
