// presence-sim: a fleet of simulated MQTT devices as real connections to a real broker, with a
// timeline of failures, reporting the truth as JSON lines (issue 6, docs/simulator.md).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "presence/tools/sim/fleet.h"
#include "presence/tools/sim/runner.h"
#include "presence/tools/sim/scenario.h"

using namespace presence::sim;

namespace {

volatile sig_atomic_t g_forward = 0;
void on_parent_signal(int sig) { g_forward = sig; }

int fail(const std::string& msg) {
  std::fprintf(stderr, "presence-sim: %s\n", msg.c_str());
  return 2;
}

// --check: what the run would be, without connecting anything.
void print_check(const SimOptions& o, const Scenario& sc, const std::vector<DeviceSpec>& fleet) {
  std::printf("presence-sim: OK: %zu devices, %zu broker(s), %d process(es), %d source address(es), "
              "%zu timeline action(s)\n",
              fleet.size(), o.brokers.size(), o.processes, effective_source_addrs(o),
              sc.timeline.size());
  auto count = [&](const char* name, auto label) {
    std::map<std::string, std::size_t> n;
    for (auto& d : fleet) ++n[label(d)];
    std::printf("  %s:", name);
    for (auto& [k, v] : n) std::printf(" %s=%zu", k.c_str(), v);
    std::printf("\n");
  };
  count("behaviour", [](const DeviceSpec& d) { return std::string(to_string(d.behaviour)); });
  count("firmware", [](const DeviceSpec& d) { return d.firmware; });
  count("site", [](const DeviceSpec& d) { return d.site; });
  count("model", [](const DeviceSpec& d) { return d.model; });
  for (auto& a : sc.timeline)
    std::printf("  at %s (line %d): %s%s%s\n", format_duration(a.at).c_str(), a.line,
                to_string(a.kind), a.select.match.empty() ? "" : " match ",
                a.select.match.empty() ? "" : to_string(a.select.match).c_str());
  if (o.duration > 0) std::printf("  end at %s\n", format_duration(o.duration).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<std::string, std::string>> cli;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(usage().c_str(), stdout);
      return 0;
    }
    if (a == "--check") {
      check = true;
      continue;
    }
    if (a.rfind("--", 0) != 0) return fail("unexpected argument '" + a + "' (see --help)");
    a = a.substr(2);
    auto eq = a.find('=');
    if (eq != std::string::npos) {
      cli.emplace_back(a.substr(0, eq), a.substr(eq + 1));
    } else {
      if (i + 1 >= argc) return fail("--" + a + " needs a value");
      cli.emplace_back(a, argv[++i]);
    }
  }

  // Options: the scenario file's `options:` first, then the command line, which wins.
  SimOptions o;
  for (auto& [k, v] : cli) {
    auto e = set_option(o, k, v);
    if (!e.empty()) return fail(e);
  }
  Scenario sc;
  if (!o.scenario.empty()) {
    std::ifstream in(o.scenario);
    if (!in) return fail("cannot read scenario " + o.scenario);
    std::stringstream ss;
    ss << in.rdbuf();
    auto parsed = parse_scenario(ss.str(), o.scenario);
    if (!parsed) return fail(parsed.error);
    sc = std::move(*parsed);
    SimOptions merged;
    for (auto& [k, v] : sc.options) set_option(merged, k, v);  // checked by parse_scenario
    for (auto& [k, v] : cli) set_option(merged, k, v);
    o = std::move(merged);
  }

  // File descriptors first: a fleet too big for this process fails at once, before it is built.
  if (o.processes > 1 && static_cast<std::size_t>(o.processes) > o.fleet.devices)
    o.processes = static_cast<int>(std::max<std::size_t>(1, o.fleet.devices));
  auto per_process = (o.fleet.devices + static_cast<std::size_t>(o.processes) - 1) /
                     static_cast<std::size_t>(o.processes);
  if (auto e = raise_fd_limit(per_process, o.processes); !e.empty()) return fail(e);
  auto fleet = build_fleet(o.fleet);
  if (!fleet) return fail(fleet.error);
  if (check) {
    print_check(o, sc, *fleet);
    return 0;
  }

  if (!o.out.empty() && o.out != "-") {
    int fd = ::open(o.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return fail("cannot open --out " + o.out + ": " + std::strerror(errno));
    ::close(fd);
  }
  std::fflush(stdout);
  if (o.processes == 1) return run_worker(o, sc, *fleet, Worker{0, 1});

  // Several workers: each its own process with its own RLIMIT_NOFILE and epoll loop.
  std::vector<pid_t> workers;
  for (int w = 0; w < o.processes; ++w) {
    pid_t pid = ::fork();
    if (pid < 0) return fail(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) std::_Exit(run_worker(o, sc, *fleet, Worker{w, o.processes}));
    workers.push_back(pid);
  }
  struct sigaction sa{};
  sa.sa_handler = on_parent_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  int rc = 0;
  std::size_t left = workers.size();
  while (left > 0) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) {
        if (g_forward)
          for (auto w : workers) ::kill(w, g_forward);
        g_forward = 0;
        continue;
      }
      break;
    }
    for (auto w : workers)
      if (w == pid) {
        --left;
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        rc = std::max(rc, code);
      }
  }
  return rc;
}
