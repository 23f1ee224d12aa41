#include "presence/tools/e2e-bench/proc.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace presence::e2e {

namespace {

// Fields 14 and 15 (utime, stime) of a /proc/.../stat line, in seconds. The command name (field
// 2) may contain spaces and parentheses, so parse from the last ')'.
double stat_cpu_seconds(const std::string& stat) {
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Field 3 (state) is the first after ')'; utime is field 14, i.e. the 12th from here.
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::uint64_t status_kb(pid_t pid, const char* key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::size_t n = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, n, key) == 0) return std::strtoull(line.c_str() + n, nullptr, 10) * 1024;
  }
  return 0;
}

}  // namespace

double cpu_seconds(pid_t pid) {
  return stat_cpu_seconds(read_file("/proc/" + std::to_string(pid) + "/stat"));
}

std::vector<ThreadCpu> thread_cpu(pid_t pid) {
  std::vector<ThreadCpu> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    ThreadCpu t;
    t.tid = static_cast<pid_t>(std::atoi(e->d_name));
    const std::string base = dir + "/" + e->d_name;
    t.seconds = stat_cpu_seconds(read_file(base + "/stat"));
    t.name = read_file(base + "/comm");
    while (!t.name.empty() && t.name.back() == '\n') t.name.pop_back();
    out.push_back(std::move(t));
  }
  ::closedir(d);
  return out;
}

std::uint64_t rss_bytes(pid_t pid) { return status_kb(pid, "VmRSS:"); }
std::uint64_t peak_rss_bytes(pid_t pid) { return status_kb(pid, "VmHWM:"); }

}  // namespace presence::e2e
