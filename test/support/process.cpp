#include "test/support/process.h"

#include "presence/common/loopback_port.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

extern char** environ;

namespace presence::test {

namespace {

// Children alive, for the signal handler of kill_all_on_signals(). Lock-free: the handler reads it.
constexpr int kMaxTracked = 16;
std::atomic<pid_t> g_children[kMaxTracked];

void remember(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t expected = 0;
    if (slot.compare_exchange_strong(expected, pid)) return;
  }
}
void forget(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

extern "C" void on_fatal_signal(int sig) {
  for (auto& slot : g_children) {
    const pid_t pid = slot.load();
    if (pid > 0) ::kill(pid, SIGKILL);
  }
  ::_exit(128 + sig);
}

}  // namespace

void Process::kill_all_on_signals() {
  ::signal(SIGINT, on_fatal_signal);
  ::signal(SIGTERM, on_fatal_signal);
}

int free_tcp_port() { return common::free_loopback_port(); }

bool tcp_port_open(int port) { return common::loopback_port_open(port); }

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
              std::chrono::milliseconds every) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(every);
  }
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/presence-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (keep_) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
  std::string p = file(name);
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + p);
  return p;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string find_program(const std::string& name) {
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/usr/local/sbin:/sbin";
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

Process::Process(std::vector<std::string> argv, std::string log_path,
                 std::map<std::string, std::string> extra_env) {
  if (argv.empty()) throw std::invalid_argument("Process: empty argv");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  const char* out = log_path.empty() ? "/dev/null" : log_path.c_str();
  posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);

  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    auto key = kv.substr(0, kv.find('='));
    if (!extra_env.count(key)) env_store.push_back(kv);
  }
  for (auto& [k, v] : extra_env) env_store.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);

  int rc = ::posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    pid_ = -1;
    throw std::runtime_error("spawn " + argv[0] + ": " + std::strerror(rc));
  }
  remember(pid_);
}

Process::~Process() {
  if (pid_ > 0) stop(SIGKILL, 2000ms);
}

Process::Process(Process&& other) noexcept : pid_(other.pid_), status_(other.status_) {
  other.pid_ = -1;
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) stop(SIGKILL, 2000ms);
    pid_ = other.pid_;
    status_ = other.status_;
    other.pid_ = -1;
  }
  return *this;
}

bool Process::running() {
  if (pid_ <= 0) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    forget(pid_);
    pid_ = -1;
    return false;
  }
  return r == 0;
}

void Process::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int Process::wait_exit(std::chrono::milliseconds timeout) {
  if (!wait_for([&] { return !running(); }, timeout, 10ms)) return -1;
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
  return -1;
}

int Process::stop(int sig, std::chrono::milliseconds timeout) {
  if (!running()) return -1;
  ::kill(pid_, sig);
  if (!wait_for([&] { return !running(); }, timeout, 10ms)) {
    ::kill(pid_, SIGKILL);
    wait_for([&] { return !running(); }, 5000ms, 10ms);
  }
  return status_;
}

Mosquitto::Mosquitto(std::string extra_conf, bool allow_anonymous)
    : port_(free_tcp_port()), extra_conf_(std::move(extra_conf)), allow_anonymous_(allow_anonymous) {
  log_ = dir_.file("mosquitto.log");
  write_conf();
}

void Mosquitto::write_conf() {
  std::ostringstream conf;
  conf << "per_listener_settings false\n"
       << "allow_anonymous " << (allow_anonymous_ ? "true" : "false") << "\n"
       << "listener " << port_ << " 127.0.0.1\n"
       << "persistence false\n"
       << "log_dest stderr\n"
       << "log_type all\n"
       << "max_keepalive 65535\n"
       << extra_conf_ << "\n";
  conf_ = dir_.write("mosquitto.conf", conf.str());
}

Mosquitto::~Mosquitto() { stop(SIGKILL); }

void Mosquitto::start() {
  std::string bin = find_program("mosquitto");
  if (bin.empty()) throw std::runtime_error("mosquitto not found (apt-get install mosquitto)");
  std::string why;
  for (int attempt = 0; attempt < 3; ++attempt) {
    proc_ = Process({bin, "-c", conf_}, log_);
    if (wait_for([&] { return tcp_port_open(port_) || !proc_.running(); }, 30000ms) &&
        proc_.running()) {
      started_once_ = true;
      return;
    }
    std::string log = read_file(log_);
    why = proc_.running() ? "no listener within 30 s" : "exited";
    proc_.stop(SIGKILL, 2000ms);
    if (log.find("Address already in use") == std::string::npos) break;
    // Someone took the port between free_tcp_port() and bind(): a first start moves on, a
    // restart waits for the port to be released and tries again.
    if (!started_once_) {
      port_ = free_tcp_port();
      write_conf();
    } else {
      wait_for([&] { return !tcp_port_open(port_); }, 5000ms);
    }
  }
  throw std::runtime_error("mosquitto did not start on port " + std::to_string(port_) + " (" +
                           why + "); log:\n" + read_file(log_));
}

void Mosquitto::stop(int sig) {
  proc_.stop(sig, 5000ms);
  // A restarted broker must get the same port: wait until the old socket is gone.
  wait_for([&] { return !tcp_port_open(port_); }, 5000ms, 10ms);
}

}  // namespace presence::test
