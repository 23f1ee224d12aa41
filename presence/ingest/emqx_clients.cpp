#include "presence/ingest/emqx_clients.h"

#include <curl/curl.h>

#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

namespace presence::ingest {

using json = nlohmann::json;

const char* to_string(EmqxFetchResult r) {
  switch (r) {
    case EmqxFetchResult::Ok: return "ok";
    case EmqxFetchResult::Unauthorized: return "unauthorized";
    case EmqxFetchResult::HttpError: return "http_error";
    case EmqxFetchResult::Timeout: return "timeout";
    case EmqxFetchResult::Network: return "network";
    case EmqxFetchResult::BadResponse: return "bad_response";
    case EmqxFetchResult::Aborted: return "aborted";
  }
  return "?";
}

bool parse_emqx_clients_page(std::string_view body, const ParseLimits& limits,
                             EmqxClientsPage& out, std::string& error) {
  out = EmqxClientsPage{};
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    error = "not a JSON object";
    return false;
  }
  const auto data = j.find("data");
  if (data == j.end() || !data->is_array()) {
    error = "no \"data\" array";
    return false;
  }
  for (const auto& c : *data) {
    if (!c.is_object()) {
      ++out.bad_entries;
      continue;
    }
    const auto id = c.find("clientid");
    if (id == c.end() || !id->is_string() || id->get_ref<const std::string&>().empty() ||
        id->get_ref<const std::string&>().size() > limits.max_id_bytes) {
      ++out.bad_entries;
      continue;
    }
    // Asked with conn_state=connected, but an older EMQX may ignore the filter: check.
    if (const auto conn = c.find("connected"); conn != c.end() && conn->is_boolean() &&
                                               !conn->get<bool>())
      continue;
    out.ids.push_back(id->get<std::string>());
  }
  if (const auto meta = j.find("meta"); meta != j.end() && meta->is_object()) {
    if (const auto h = meta->find("hasnext"); h != meta->end() && h->is_boolean())
      out.hasnext = h->get<bool>();
  }
  return true;
}

namespace {

std::once_flag curl_once;

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* s = static_cast<std::string*>(user);
  constexpr std::size_t kMaxPageBytes = 64u * 1024 * 1024;  // 10,000 clients at ~2 KiB each, x3
  if (s->size() + size * n > kMaxPageBytes) return 0;  // curl fails the transfer (write error)
  s->append(data, size * n);
  return size * n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* abort = static_cast<const std::atomic<bool>*>(user);
  return abort != nullptr && abort->load() ? 1 : 0;
}

struct Page {
  EmqxFetchResult result = EmqxFetchResult::Ok;
  long status = 0;
  std::string body;
  std::string error;
};

Page get_page(const EmqxApiOptions& o, std::size_t page, const std::atomic<bool>* abort) {
  Page p;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    p.result = EmqxFetchResult::Network;
    p.error = "curl_easy_init failed";
    return p;
  }
  std::string url = o.url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += "/api/v5/clients?conn_state=connected&page=" + std::to_string(page) +
         "&limit=" + std::to_string(o.page_size);
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
  curl_easy_setopt(curl, CURLOPT_USERNAME, o.api_key.c_str());
  curl_easy_setopt(curl, CURLOPT_PASSWORD, o.api_secret.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(o.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &p.body);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(abort));
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &p.status);
  curl_easy_cleanup(curl);
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    p.result = EmqxFetchResult::Aborted;
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    p.result = EmqxFetchResult::Timeout;
    p.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  } else if (rc != CURLE_OK) {
    p.result = EmqxFetchResult::Network;
    p.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  } else if (p.status == 401 || p.status == 403) {
    p.result = EmqxFetchResult::Unauthorized;
    p.error = "HTTP " + std::to_string(p.status) + " (check emqx_api.api_key / api_secret)";
  } else if (p.status < 200 || p.status >= 300) {
    p.result = EmqxFetchResult::HttpError;
    p.error = "HTTP " + std::to_string(p.status);
  }
  return p;
}

bool retryable(EmqxFetchResult r) {
  return r == EmqxFetchResult::HttpError || r == EmqxFetchResult::Timeout ||
         r == EmqxFetchResult::Network;
}

// Sleeps up to d, returning early (false) when aborted.
bool pause(std::chrono::milliseconds d, const std::atomic<bool>* abort) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (abort != nullptr && abort->load()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace

EmqxFetch fetch_emqx_clients(const EmqxApiOptions& o, const ParseLimits& limits,
                             const std::atomic<bool>* abort) {
  std::call_once(curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  EmqxFetch f;
  for (std::size_t page = 1; page <= o.max_pages; ++page) {
    Page p;
    auto backoff = o.retry_backoff;
    for (int attempt = 1;; ++attempt) {
      p = get_page(o, page, abort);
      if (p.result == EmqxFetchResult::Ok || !retryable(p.result) || attempt >= o.attempts)
        break;
      if (!pause(backoff, abort)) {
        p.result = EmqxFetchResult::Aborted;
        break;
      }
      backoff *= 2;
    }
    f.http_status = p.status;
    if (p.result != EmqxFetchResult::Ok) {
      f.result = p.result;
      f.detail = "page " + std::to_string(page) + ": " + p.error;
      return f;
    }
    EmqxClientsPage parsed;
    std::string error;
    if (!parse_emqx_clients_page(p.body, limits, parsed, error)) {
      f.result = EmqxFetchResult::BadResponse;
      f.detail = "page " + std::to_string(page) + ": " + error;
      return f;
    }
    ++f.pages;
    f.bad_entries += parsed.bad_entries;
    for (auto& id : parsed.ids) f.ids.push_back(std::move(id));
    if (!parsed.hasnext) return f;  // max_pages bounds a server that always says hasnext
  }
  f.detail = "stopped at emqx_api max_pages (" + std::to_string(o.max_pages) + ")";
  return f;
}

Parsed emqx_client_list(const EmqxFetch& fetch) {
  Parsed p;
  p.what = Parsed::What::ClientList;
  p.kind = core::EventKind::Connected;
  p.source = core::Source::Emqx;
  p.ids = fetch.ids;
  p.sessions.assign(p.ids.size(), 0);  // EMQX's list carries no session sequence: order by arrival
  return p;
}

}  // namespace presence::ingest
