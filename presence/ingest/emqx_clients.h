// Start-up reconciliation for EMQX (issue 14 item 5): who is connected *now*, from EMQX's
// documented clients REST API, GET /api/v5/clients?conn_state=connected&page=N&limit=M with HTTP
// basic auth (an API key and secret made in EMQX's dashboard). The reply becomes the same
// Parsed::ClientList broker-ext's reply becomes, so the service reconciles both by one code path.
//
// Response shape (EMQX 5 docs, "Clients"): {"data":[{"clientid":"a","connected":true,
// "keepalive":60,"node":"emqx@host",...},...], "meta":{"page":1,"limit":100,"hasnext":true,
// "count":1234}}. "count" may be absent on large clusters; "hasnext" decides paging.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "presence/ingest/payload.h"

namespace presence::ingest {

struct EmqxApiOptions {
  std::string url;         // base, e.g. http://127.0.0.1:18083; empty = off
  std::string api_key;     // basic-auth user
  std::string api_secret;  // basic-auth password
  std::size_t page_size = 1000;                     // EMQX allows 1..10000
  std::chrono::milliseconds timeout{5000};          // per page, connect included
  std::size_t max_pages = 1000;                     // a bound, whatever the cluster says
  int attempts = 3;                                 // per page, on 5xx / timeout / network
  std::chrono::milliseconds retry_backoff{1000};    // doubled per attempt
  bool enabled() const { return !url.empty(); }
  bool operator==(const EmqxApiOptions&) const = default;
};

// One page, parsed (pure; exposed for tests). False and `error` set when the body is not the
// documented shape; an entry without a usable clientid costs that entry only (bad_entries).
struct EmqxClientsPage {
  std::vector<std::string> ids;  // connected clients only
  bool hasnext = false;
  std::size_t bad_entries = 0;
};
bool parse_emqx_clients_page(std::string_view body, const ParseLimits& limits,
                             EmqxClientsPage& out, std::string& error);

// The outcome of one fetch, word per kind for logs and metrics (presence_reconcile_fetches_total).
enum class EmqxFetchResult : std::uint8_t {
  Ok,
  Unauthorized,  // 401/403: wrong key or secret; not retried
  HttpError,     // another non-2xx after the retries
  Timeout,
  Network,       // connection refused, DNS, TLS ...
  BadResponse,   // 2xx but not the documented JSON
  Aborted,       // presenced is stopping
};
inline constexpr std::size_t kEmqxFetchResults = 7;
const char* to_string(EmqxFetchResult r);

struct EmqxFetch {
  EmqxFetchResult result = EmqxFetchResult::Ok;
  long http_status = 0;     // of the last request
  std::size_t pages = 0;    // pages read successfully
  std::size_t bad_entries = 0;
  std::string detail;       // for the log line
  // Clients of the pages read: on a failure after page 1 they are still true (each listed client
  // is connected), so they are reconciled; the rest wait for their grace as without the API.
  std::vector<std::string> ids;
};

// Blocking, libcurl; run it on a worker thread. `abort` (optional) cancels it promptly.
EmqxFetch fetch_emqx_clients(const EmqxApiOptions& options, const ParseLimits& limits,
                             const std::atomic<bool>* abort = nullptr);

// The fetch as broker-ext's reply would be parsed: What::ClientList, one id per client.
Parsed emqx_client_list(const EmqxFetch& fetch);

}  // namespace presence::ingest
