#include "test/support/presenced.h"

#include <unistd.h>

#include <atomic>
#include <stdexcept>

#include <httplib.h>

namespace presence::test {

std::string unique_suffix() {
  static std::atomic<int> n{0};
  return std::to_string(::getpid()) + "-" + std::to_string(++n);
}

PresencedProcess::PresencedProcess() : http_port_(free_tcp_port()) {}

std::string PresencedProcess::binary() {
  return std::string(PRESENCE_BINARY_DIR) + "/presence/app/presenced";
}

void PresencedProcess::write_config(const std::string& yaml) {
  config_ = dir_.write("presenced.yaml", yaml);
}

void PresencedProcess::launch() {
  if (config_.empty()) throw std::logic_error("PresencedProcess: write_config before launch");
  proc_ = Process({binary(), "--config", config_}, log_);
}

void PresencedProcess::start(const std::string& ready_path, std::chrono::milliseconds timeout,
                             const std::string& name) {
  launch();
  if (!wait_for([&] { return status(ready_path) == 200 || !proc_.running(); }, timeout) ||
      !proc_.running())
    throw std::runtime_error(name + " did not become ready; log:\n" + log());
}

int PresencedProcess::status(const std::string& path) {
  httplib::Client cli("127.0.0.1", http_port_);
  cli.set_connection_timeout(1s);
  cli.set_read_timeout(2s);
  auto res = cli.Get(path.c_str());
  return res ? res->status : -1;
}

std::string PresencedProcess::body(const std::string& path) {
  httplib::Client cli("127.0.0.1", http_port_);
  cli.set_connection_timeout(1s);
  cli.set_read_timeout(2s);
  auto res = cli.Get(path.c_str());
  return res ? res->body : std::string();
}

double PresencedProcess::metric(const std::string& sample) {
  const std::string text = metrics();
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const auto sp = line.rfind(' ');
    if (sp != std::string_view::npos && line.substr(0, sp) == sample)
      return std::stod(std::string(line.substr(sp + 1)));
  }
  return -1;
}

}  // namespace presence::test
