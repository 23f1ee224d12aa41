// presence-replay: feed a replay log (docs/replay.md) through the core on simulated time and print
// every decision. With --set it answers "what if": the same recorded day under other parameters.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>

#include "presence/tools/replay/replay.h"
#include "presence/tools/replay/replay_format.h"

namespace {

void usage(std::ostream& os) {
  os << "usage: presence-replay [options] FILE   (FILE '-' reads stdin)\n"
        "  --set KEY=VALUE      override a core parameter, e.g. --set offline_grace=45s\n"
        "                       (repeatable; --list-params shows the names)\n"
        "                       alert policy: alert_after, group_wait, group_interval,\n"
        "                       blind_alert_after (docs/alert-policy.md)\n"
        "  --no-alerts          transitions only (no alert policy / fleet monitor)\n"
        "  --json               JSON lines instead of the human form\n"
        "  --strict             the first bad line stops the replay (exit 1)\n"
        "  --show-events        echo every input event (but heartbeats) before its decisions\n"
        "  --show-heartbeats    with --show-events, echo heartbeats too\n"
        "  --final              list every device's final state in the summary\n"
        "  --no-summary         no summary at the end\n"
        "  --tick-interval DUR  periodic engine tick on simulated time (default 1s, 0 = off)\n"
        "  --until TIME         keep ticking to TIME after the last line (e.g. 600 or 600.5)\n"
        "  --speed X            pace the replay at X simulated seconds per real second\n"
        "                       (default 0: as fast as possible)\n"
        "  --color|--no-color   ANSI colours (default: when stdout is a terminal)\n"
        "exit: 0 done (bad lines are reported and counted), 1 stopped by --strict,\n"
        "      2 bad arguments or parameters, 3 cannot open FILE\n";
}

}  // namespace

int main(int argc, char** argv) {
  using presence::tools::apply_config_override;
  presence::tools::ReplayOptions opt;
  std::string file;
  int colour = -1;  // auto
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string_view flag) -> const char* {
      if (i + 1 >= argc) {
        std::cerr << "presence-replay: " << flag << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      usage(std::cout);
      return 0;
    } else if (arg == "--list-params") {
      for (auto k : presence::tools::config_override_keys()) std::cout << k << "\n";
      for (auto k : presence::tools::policy_override_keys()) std::cout << k << "\n";
      return 0;
    } else if (arg == "--set" || arg.rfind("--set=", 0) == 0) {
      const std::string_view assignment = arg == "--set" ? value(arg) : arg.substr(6);
      const std::string_view key = assignment.substr(0, assignment.find('='));
      const auto policy_keys = presence::tools::policy_override_keys();
      const bool policy_key =
          std::find(policy_keys.begin(), policy_keys.end(), key) != policy_keys.end();
      const auto e = policy_key ? presence::tools::apply_policy_override(opt.policy, assignment)
                                : apply_config_override(opt.config, assignment);
      if (e) {
        std::cerr << "presence-replay: --set " << *e << "\n";
        return 2;
      }
    } else if (arg == "--no-alerts") {
      opt.alerts = false;
    } else if (arg == "--json") {
      opt.json = true;
    } else if (arg == "--strict") {
      opt.strict = true;
    } else if (arg == "--show-events") {
      opt.show_events = true;
    } else if (arg == "--show-heartbeats") {
      opt.show_heartbeats = true;
    } else if (arg == "--final") {
      opt.show_final = true;
    } else if (arg == "--no-summary") {
      opt.summary = false;
    } else if (arg == "--color") {
      colour = 1;
    } else if (arg == "--no-color") {
      colour = 0;
    } else if (arg == "--tick-interval") {
      const char* v = value(arg);
      const auto d = presence::tools::parse_duration(v);
      if (!d && std::string_view(v) != "0") {
        std::cerr << "presence-replay: --tick-interval: bad duration '" << v << "'\n";
        return 2;
      }
      opt.tick_interval = d ? *d : presence::core::Duration{0};
    } else if (arg == "--speed") {
      const char* v = value(arg);
      char* end = nullptr;
      opt.speed = std::strtod(v, &end);
      if (end == v || *end != '\0' || !(opt.speed >= 0) || opt.speed > 1e9) {
        std::cerr << "presence-replay: --speed: expected a number >= 0, got '" << v << "'\n";
        return 2;
      }
    } else if (arg == "--until") {
      const char* v = value(arg);
      const auto t = presence::tools::parse_time_ms(v);
      if (!t) {
        std::cerr << "presence-replay: --until: bad time '" << v << "'\n";
        return 2;
      }
      opt.until = presence::core::mono_ms(*t);
    } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
      std::cerr << "presence-replay: unknown option '" << arg << "'\n";
      usage(std::cerr);
      return 2;
    } else if (file.empty()) {
      file = std::string(arg);
    } else {
      std::cerr << "presence-replay: only one FILE\n";
      return 2;
    }
  }
  if (file.empty()) {
    usage(std::cerr);
    return 2;
  }
  if (auto e = presence::tools::check_config(opt.config)) {
    std::cerr << "presence-replay: bad parameters: " << *e << "\n";
    return 2;
  }
  if (std::string e = presence::core::validate(opt.policy); !e.empty()) {
    std::cerr << "presence-replay: bad parameters: " << e << "\n";
    return 2;
  }
  opt.color = colour == 1 || (colour == -1 && !opt.json && isatty(STDOUT_FILENO) == 1);

  std::ifstream f;
  std::istream* in = &std::cin;
  if (file != "-") {
    f.open(file, std::ios::binary);
    if (!f) {
      std::cerr << "presence-replay: cannot open " << file << ": " << std::strerror(errno) << "\n";
      return 3;
    }
    in = &f;
  }
  // On a terminal decisions show as they happen; into a pipe or file, buffered for speed.
  if (isatty(STDOUT_FILENO) == 1) std::cout << std::unitbuf;
  const auto summary = presence::tools::run_replay(*in, file == "-" ? "stdin" : file, opt,
                                                   std::cout, std::cerr);
  return summary.aborted ? 1 : 0;
}
