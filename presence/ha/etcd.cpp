#include "presence/ha/etcd.h"

#include <curl/curl.h>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

namespace presence::ha {
namespace {

using json = nlohmann::json;

std::string b64(const std::string& s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(s.data()),
                                static_cast<int>(s.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string unb64(const std::string& s) {
  if (s.empty()) return {};
  std::string out(3 * s.size() / 4 + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(s.data()),
                                static_cast<int>(s.size()));
  if (n < 0) return {};
  std::size_t len = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  if (s.size() >= 1 && s[s.size() - 1] == '=') --len;
  if (s.size() >= 2 && s[s.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

// etcd's gateway encodes int64 as strings and omits zero values.
std::int64_t num(const json& j, const char* key) {
  if (!j.contains(key)) return 0;
  const auto& v = j[key];
  if (v.is_string()) return std::stoll(v.get<std::string>());
  if (v.is_number()) return v.get<std::int64_t>();
  return 0;
}

// The end of the range of every key starting with prefix: prefix with its last byte + 1.
std::string prefix_end(std::string p) {
  while (!p.empty()) {
    auto& c = p.back();
    if (static_cast<unsigned char>(c) < 0xff) {
      ++c;
      return p;
    }
    p.pop_back();
  }
  return std::string(1, '\0');
}

KeyValue to_kv(const json& k) {
  KeyValue kv;
  kv.key = unb64(k.value("key", ""));
  kv.value = unb64(k.value("value", ""));
  kv.create_revision = num(k, "create_revision");
  kv.mod_revision = num(k, "mod_revision");
  kv.lease = num(k, "lease");
  return kv;
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* s = static_cast<std::string*>(user);
  if (s->size() > (1u << 22)) return 0;  // 4 MiB: not an answer we asked for
  s->append(data, size * n);
  return size * n;
}

}  // namespace

Etcd::Etcd(std::vector<std::string> endpoints, core::Duration timeout)
    : endpoints_(std::move(endpoints)), timeout_(timeout) {
  for (auto& e : endpoints_)
    while (!e.empty() && e.back() == '/') e.pop_back();
}

std::optional<std::string> Etcd::post(const std::string& path, const std::string& body) {
  const std::size_t n = endpoints_.size();
  for (std::size_t tried = 0; tried < n; ++tried) {
    const std::size_t i = (current_.load() + tried) % n;
    CURL* c = curl_easy_init();
    if (c == nullptr) return std::nullopt;
    std::string out;
    const std::string url = endpoints_[i] + path;
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    const CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (rc == CURLE_OK && status == 200) {
      current_ = i;
      return out;
    }
    // 4xx/5xx from the gateway (e.g. etcd has no leader) counts as unreachable too: the request
    // did not take effect.
  }
  return std::nullopt;
}

std::optional<std::int64_t> Etcd::grant(std::int64_t ttl_seconds) {
  auto r = post("/v3/lease/grant", json{{"TTL", std::to_string(ttl_seconds)}}.dump());
  if (!r) return std::nullopt;
  try {
    const std::int64_t id = num(json::parse(*r), "ID");
    if (id == 0) return std::nullopt;
    return id;
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<std::int64_t> Etcd::keepalive(std::int64_t lease) {
  auto r = post("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}}.dump());
  if (!r) return std::nullopt;
  try {
    const auto j = json::parse(*r);
    return num(j.value("result", json::object()), "TTL");
  } catch (...) {
    return std::nullopt;
  }
}

bool Etcd::revoke(std::int64_t lease) {
  return post("/v3/lease/revoke", json{{"ID", std::to_string(lease)}}.dump()).has_value();
}

std::optional<Campaign> Etcd::campaign(const std::string& key, const std::string& value,
                                       std::int64_t lease) {
  const json body{
      {"compare", {{{"key", b64(key)}, {"result", "EQUAL"}, {"target", "CREATE"},
                    {"create_revision", "0"}}}},
      {"success",
       {{{"request_put", {{"key", b64(key)}, {"value", b64(value)},
                          {"lease", std::to_string(lease)}}}}}},
      {"failure", {{{"request_range", {{"key", b64(key)}}}}}}};
  auto r = post("/v3/kv/txn", body.dump());
  if (!r) return std::nullopt;
  try {
    const auto j = json::parse(*r);
    Campaign c;
    c.won = j.value("succeeded", false);
    if (c.won) {
      c.create_revision = num(j.value("header", json::object()), "revision");
      return c;
    }
    for (const auto& resp : j.value("responses", json::array())) {
      const auto rr = resp.value("response_range", json::object());
      for (const auto& k : rr.value("kvs", json::array())) {
        const KeyValue kv = to_kv(k);
        c.create_revision = kv.create_revision;
        c.holder = kv.value;
      }
    }
    return c;
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<bool> Etcd::put_fenced(const std::string& fence_key, std::int64_t fence,
                                     const std::string& key, const std::string& value) {
  return txn({{key, value, false}}, fence_key, fence);
}

std::optional<bool> Etcd::txn(const std::vector<Op>& ops, const std::string& fence_key,
                              std::int64_t fence) {
  json compare = json::array();
  if (!fence_key.empty())
    compare.push_back({{"key", b64(fence_key)}, {"result", "EQUAL"}, {"target", "CREATE"},
                       {"create_revision", std::to_string(fence)}});
  json success = json::array();
  for (const auto& op : ops) {
    if (op.del) success.push_back({{"request_delete_range", {{"key", b64(op.key)}}}});
    else success.push_back({{"request_put", {{"key", b64(op.key)}, {"value", b64(op.value)}}}});
  }
  const json body{{"compare", compare}, {"success", success}};
  auto r = post("/v3/kv/txn", body.dump());
  if (!r) return std::nullopt;
  try {
    return json::parse(*r).value("succeeded", false);
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<bool> Etcd::put(const std::string& key, const std::string& value,
                              std::int64_t lease) {
  json body{{"key", b64(key)}, {"value", b64(value)}};
  if (lease != 0) body["lease"] = std::to_string(lease);
  auto r = post("/v3/kv/put", body.dump());
  if (!r) return std::nullopt;
  return true;
}

std::optional<std::vector<KeyValue>> Etcd::range(const std::string& key, bool prefix,
                                                 std::int64_t limit) {
  return prefix ? range_from(key, key, limit) : range_from({}, key, limit);
}

std::optional<std::vector<KeyValue>> Etcd::range_from(const std::string& prefix,
                                                      const std::string& from,
                                                      std::int64_t limit) {
  json body{{"key", b64(from)}};
  if (!prefix.empty()) body["range_end"] = b64(prefix_end(prefix));
  if (limit > 0) body["limit"] = std::to_string(limit);
  auto r = post("/v3/kv/range", body.dump());
  if (!r) return std::nullopt;
  try {
    std::vector<KeyValue> out;
    for (const auto& k : json::parse(*r).value("kvs", json::array())) out.push_back(to_kv(k));
    return out;
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace presence::ha
