// Fuzz target: the replay format (presence/tools/replay/replay_format.*, docs/replay.md). A recorded log
// can hold anything a broker delivered; every bad line must be a clear error, never a crash or an
// unbounded allocation.
//
// Input: a replay file. Lines starting with '!' are `key=value` config/policy overrides instead
// (what `presence-replay --set` takes), so one corpus covers both.
#include <cstdlib>
#include <sstream>
#include <string>

#include "presence/tools/replay/replay_format.h"
#include "test/fuzz/fuzz.h"

using namespace presence::tools;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream file(std::string(reinterpret_cast<const char*>(data), size));
  presence::core::Config config;
  presence::core::PolicyConfig policy;
  std::string line;
  bool too_long = false;
  while (read_bounded_line(file, line, too_long, 4096)) {
    if (too_long && line.size() > 4096) std::abort();
    if (!line.empty() && line.front() == '!') {
      const std::string_view assignment = std::string_view(line).substr(1);
      apply_config_override(config, assignment);
      apply_policy_override(policy, assignment);
      continue;
    }
    const ParsedLine p = parse_replay_line(line);
    if (p.status == ParsedLine::Status::Error && p.error.empty()) std::abort();
    if (p.status == ParsedLine::Status::Event) {
      const auto ms = p.line.at.time_since_epoch();
      if (ms.count() < 0) std::abort();
      if (has_device(p.line.kind) &&
          (p.line.device.empty() || p.line.device.size() > kMaxDeviceIdBytes))
        std::abort();
    }
    if (const auto t = parse_time_ms(line)) format_time(*t);
    parse_duration(line);
  }
  check_config(config);
  return 0;
}
