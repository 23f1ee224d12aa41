#include "presence/alert/http.h"

#include <curl/curl.h>

#include <cctype>
#include <ctime>
#include <mutex>
#include <string_view>

#include "presence/alert/backoff.h"

namespace presence::alert {
namespace {

struct Transfer {
  HttpResponse* response = nullptr;
  const std::atomic<bool>* abort = nullptr;
};

std::size_t on_body(char* data, std::size_t size, std::size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * nmemb;
  auto& body = t->response->body;
  if (body.size() < HttpClient::kMaxBody)
    body.append(data, std::min(n, HttpClient::kMaxBody - body.size()));
  return n;
}

std::size_t on_header(char* data, std::size_t size, std::size_t nitems, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * nitems;
  const std::string_view line(data, n);
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size()) {
    bool match = true;
    for (std::size_t i = 0; i < kName.size() && match; ++i) {
      match = std::tolower(static_cast<unsigned char>(line[i])) == kName[i];
    }
    if (match) {
      t->response->retry_after = parse_retry_after(line.substr(kName.size()), std::time(nullptr));
    }
  }
  return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return (t->abort != nullptr && t->abort->load()) ? 1 : 0;
}

}  // namespace

HttpClient::HttpClient() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_ = curl_easy_init();
}

HttpClient::~HttpClient() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpResponse HttpClient::post(const HttpRequest& request, const HttpTimeouts& timeouts,
                              const std::atomic<bool>* abort) {
  HttpResponse response;
  auto* curl = static_cast<CURL*>(curl_);
  if (curl == nullptr) {
    response.error = "curl_easy_init failed";
    return response;
  }
  Transfer transfer{&response, abort};
  curl_slist* headers = nullptr;
  for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  // libcurl sends "Expect: 100-continue" for bodies over 1 KiB and then waits up to a second for
  // the interim response; the endpoints we talk to do not need it.
  headers = curl_slist_append(headers, "Expect:");

  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "presenced/1");
  // Threads: no signals (libcurl's DNS timeouts would otherwise use SIGALRM).
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeouts.connect.count()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeouts.total.count()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
  // Alert endpoints are https in production; never follow redirects to somewhere else.
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");

  const CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  } else {
    response.status = 0;
    response.aborted = rc == CURLE_ABORTED_BY_CALLBACK;
    response.error = curl_easy_strerror(rc);
    response.retry_after.reset();
  }
  curl_slist_free_all(headers);
  return response;
}

}  // namespace presence::alert
