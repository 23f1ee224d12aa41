// HTTP POST over libcurl for the sinks. One HttpClient per delivery thread (a curl easy handle is
// not shareable), reused so keep-alive connections are too.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "presence/core/time.h"

namespace presence::alert {

using core::Duration;

struct HttpRequest {
  std::string url;
  std::string body;
  std::vector<std::string> headers;  // "Name: value"
};

struct HttpResponse {
  long status = 0;                      // 0 = no HTTP response (network error, timeout, abort)
  std::string body;                     // first kMaxBody bytes, for logs
  std::optional<Duration> retry_after;  // parsed Retry-After header
  std::string error;                    // curl's message when status == 0
  bool aborted = false;                 // stopped by the abort flag (shutdown)
};

struct HttpTimeouts {
  Duration connect{std::chrono::seconds(5)};
  Duration total{std::chrono::seconds(10)};
};

class HttpClient {
 public:
  static constexpr std::size_t kMaxBody = 4096;

  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Never throws. abort (optional) is polled during the transfer: when it becomes true the
  // request is cancelled, so shutdown never waits for a hanging endpoint.
  HttpResponse post(const HttpRequest& request, const HttpTimeouts& timeouts,
                    const std::atomic<bool>* abort = nullptr);

 private:
  void* curl_ = nullptr;  // CURL*
};

}  // namespace presence::alert
