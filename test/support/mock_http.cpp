#include "test/support/mock_http.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace presence::test {
namespace {

bool iequals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string RecordedRequest::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

MockHttpServer::MockHttpServer(int port) : server_(std::make_unique<httplib::Server>()) {
  auto handle = [this](const httplib::Request& req, httplib::Response& res) {
    RecordedRequest rec;
    rec.method = req.method;
    rec.path = req.path;
    rec.body = req.body;
    for (const auto& [k, v] : req.headers) rec.headers.emplace_back(k, v);
    rec.at = std::chrono::steady_clock::now();

    MockResponse out;
    std::function<MockResponse(const RecordedRequest&)> handler;
    {
      std::lock_guard lock(mu_);
      handler = handler_;
      if (!handler) {
        if (!script_.empty()) {
          out = std::move(script_.front());
          script_.pop_front();
        } else {
          out = default_;
        }
      }
      requests_.push_back(rec);
    }
    cv_.notify_all();
    if (handler) out = handler(rec);

    if (out.hang) {
      std::unique_lock lock(mu_);
      // Bounded even if a test forgets to release: a test never hangs forever.
      cv_.wait_for(lock, std::chrono::seconds(30), [&] { return released_ || stopped_; });
    } else if (out.delay.count() > 0) {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, out.delay, [&] { return stopped_; });
    }
    res.status = out.status;
    for (const auto& [k, v] : out.headers) res.set_header(k, v);
    res.set_content(out.body, "application/json");
  };
  server_->Post(".*", handle);
  server_->Put(".*", handle);
  server_->Get(".*", handle);
  server_->set_keep_alive_max_count(100);
  // Headers and body go out in two writes: with Nagle on, the second waits for the client's
  // delayed ACK (~40 ms per request), and a burst test measures that instead of the sink.
  server_->set_tcp_nodelay(true);

  if (port == 0) {
    port_ = server_->bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("MockHttpServer: cannot bind 127.0.0.1");
  } else {
    if (!server_->bind_to_port("127.0.0.1", port)) {
      throw std::runtime_error("MockHttpServer: cannot bind 127.0.0.1:" + std::to_string(port));
    }
    port_ = port;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // Bounded wait for the accept loop (requests are queued by the kernel meanwhile anyway).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_->is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

MockHttpServer::~MockHttpServer() { stop(); }

void MockHttpServer::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  cv_.notify_all();
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::string MockHttpServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void MockHttpServer::set_default(MockResponse response) {
  std::lock_guard lock(mu_);
  default_ = std::move(response);
}

void MockHttpServer::push(MockResponse response) {
  std::lock_guard lock(mu_);
  script_.push_back(std::move(response));
}

void MockHttpServer::set_handler(std::function<MockResponse(const RecordedRequest&)> handler) {
  std::lock_guard lock(mu_);
  handler_ = std::move(handler);
}

std::vector<RecordedRequest> MockHttpServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::size_t MockHttpServer::count() const {
  std::lock_guard lock(mu_);
  return requests_.size();
}

bool MockHttpServer::wait_for_count(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
}

void MockHttpServer::release_hangs() {
  {
    std::lock_guard lock(mu_);
    released_ = true;
  }
  cv_.notify_all();
}

}  // namespace presence::test
