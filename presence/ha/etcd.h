// A thin etcd v3 client over its JSON gateway (/v3/kv/..., /v3/lease/..., base64 keys and values)
// and libcurl (issue 13). Only what the HA pair needs. Every call is bounded by `timeout` and
// returns nullopt when no endpoint answered (etcd unreachable: the caller feeds Role::etcd_result);
// an endpoint that fails is skipped for the next one. Thread-safe: one curl handle per request.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "presence/core/time.h"

namespace presence::ha {

struct KeyValue {
  std::string key, value;
  std::int64_t create_revision = 0, mod_revision = 0, lease = 0;
};

struct Campaign {
  bool won = false;
  std::int64_t create_revision = 0;  // of the key now (ours when won)
  std::string holder;                // its value (the leader's name) when lost
};

class Etcd {
 public:
  Etcd(std::vector<std::string> endpoints, core::Duration timeout);

  std::optional<std::int64_t> grant(std::int64_t ttl_seconds);  // lease id
  // Remaining TTL in seconds; 0 = the lease is gone.
  std::optional<std::int64_t> keepalive(std::int64_t lease);
  bool revoke(std::int64_t lease);
  // Creates key=value with the lease if the key does not exist (create_revision == 0).
  std::optional<Campaign> campaign(const std::string& key, const std::string& value,
                                   std::int64_t lease);
  // Puts key=value only while fence_key's create_revision is still `fence`: the fenced write.
  // false = the fence failed (we are no longer the leader).
  std::optional<bool> put_fenced(const std::string& fence_key, std::int64_t fence,
                                 const std::string& key, const std::string& value);
  std::optional<bool> put(const std::string& key, const std::string& value,
                          std::int64_t lease = 0);
  // Puts (value) and deletes (del) applied in one transaction; with a fence_key, only while its
  // create_revision is still `fence` (false = the fence failed, nothing was written).
  struct Op {
    std::string key, value;
    bool del = false;
  };
  std::optional<bool> txn(const std::vector<Op>& ops, const std::string& fence_key = {},
                          std::int64_t fence = 0);
  // One key, or every key under a prefix (at most `limit` of them when limit > 0).
  std::optional<std::vector<KeyValue>> range(const std::string& key, bool prefix = false,
                                             std::int64_t limit = 0);
  // Keys under prefix from `from` on (inclusive), in key order, at most limit: one page of a scan.
  std::optional<std::vector<KeyValue>> range_from(const std::string& prefix,
                                                  const std::string& from, std::int64_t limit);

 private:
  std::optional<std::string> post(const std::string& path, const std::string& body);

  std::vector<std::string> endpoints_;
  core::Duration timeout_;
  std::atomic<std::size_t> current_{0};
};

}  // namespace presence::ha
