// A scripted HTTP receiver on 127.0.0.1 for tests (cpp-httplib). It records every request and
// answers from a script: the next queued response, else the default (200 "ok"). A response can
// carry headers (Retry-After...), a delay, or hang until release_hangs()/destruction, to stand in
// for PagerDuty, Slack and webhook endpoints that accept, reject, throttle, fail or stall.
//
//   presence::test::MockHttpServer pd;             // free port, serving at once
//   pd.push({429, "", {{"Retry-After", "1"}}});    // first request: throttled
//   pd.set_default({202, R"({"status":"success"})"});
//   ... pd.url("/v2/enqueue") ...
//   REQUIRE(pd.wait_for_count(2, std::chrono::seconds(5)));
//
// Build: include(${PROJECT_SOURCE_DIR}/test/support/mock_http.cmake) and link presence_mock_http.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace httplib {
class Server;
}

namespace presence::test {

struct RecordedRequest {
  std::string method;
  std::string path;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::steady_clock::time_point at;  // when it arrived (before any delay or hang)

  // First header with this name (case-insensitive), or "" when absent.
  std::string header(const std::string& name) const;
};

struct MockResponse {
  MockResponse() = default;
  MockResponse(int status_, std::string body_ = "",
               std::vector<std::pair<std::string, std::string>> headers_ = {},
               std::chrono::milliseconds delay_ = std::chrono::milliseconds(0), bool hang_ = false)
      : status(status_),
        body(std::move(body_)),
        headers(std::move(headers_)),
        delay(delay_),
        hang(hang_) {}

  int status = 200;
  std::string body = "ok";
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds delay{0};  // answer after this long
  bool hang = false;                   // do not answer until release_hangs() or destruction
};

class MockHttpServer {
 public:
  // port 0 = any free loopback port; a given port is bound (e.g. to bring an endpoint "back up"
  // on the port a client was configured with). Throws std::runtime_error if it cannot bind.
  explicit MockHttpServer(int port = 0);
  ~MockHttpServer();
  MockHttpServer(const MockHttpServer&) = delete;
  MockHttpServer& operator=(const MockHttpServer&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path = "/") const;

  void set_default(MockResponse response);
  void push(MockResponse response);  // answers the next unanswered request, FIFO
  // Full control: called for every request (after recording) instead of the script.
  void set_handler(std::function<MockResponse(const RecordedRequest&)> handler);

  std::vector<RecordedRequest> requests() const;
  std::size_t count() const;
  // Polls (bounded) until at least n requests have arrived.
  bool wait_for_count(std::size_t n, std::chrono::milliseconds timeout) const;
  // Lets every hanging request answer (with its status) now, and later ones not hang.
  void release_hangs();
  // Stops listening (connections are refused afterwards). Also done by the destructor.
  void stop();

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<RecordedRequest> requests_;
  std::deque<MockResponse> script_;
  MockResponse default_;
  std::function<MockResponse(const RecordedRequest&)> handler_;
  bool released_ = false;
  bool stopped_ = false;
};

}  // namespace presence::test
