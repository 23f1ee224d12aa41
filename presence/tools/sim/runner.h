// The I/O side of presence-sim: one epoll loop holding every device's connection (non-blocking
// sockets, the codec in presence/common/mqtt_codec.h), the timeline, background failures, and the JSON-lines report.
#pragma once

#include <vector>

#include "presence/tools/sim/fleet.h"
#include "presence/tools/sim/scenario.h"

namespace presence::sim {

struct Worker {
  int index = 0;
  int count = 1;
};

// Raises RLIMIT_NOFILE to what `devices` connections need. Returns an error message (empty on
// success) naming the hard limit and how many processes would fit.
std::string raise_fd_limit(std::size_t devices, int processes);

// Runs the devices with index % worker.count == worker.index until the run ends. Returns the
// process exit code.
int run_worker(const SimOptions& o, const Scenario& scenario, const std::vector<DeviceSpec>& fleet,
               Worker worker);

}  // namespace presence::sim
