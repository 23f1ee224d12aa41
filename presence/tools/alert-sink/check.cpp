#include "presence/tools/alert-sink/check.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <set>

namespace presence::alert_sink {
namespace {

using nlohmann::json;

// One line must stay one line: newlines in a summary would let a payload forge extra alert lines
// in the demo output.
std::string one_line(std::string_view s, std::size_t max_chars = 160) {
  std::string out;
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) != 0x80) {
      if (chars == max_chars) {
        out += "...";
        break;
      }
      ++chars;
    }
    out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : static_cast<char>(c);
  }
  return out;
}

std::string in_quotes(std::string_view s) { return "\"" + one_line(s) + "\""; }

const json* member(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

// The string member, or nullptr when absent or not a string.
const std::string* string_member(const json& j, const char* key) {
  const json* m = member(j, key);
  return m && m->is_string() ? m->get_ptr<const std::string*>() : nullptr;
}

RequestCheck refuse(RequestCheck v, int status, std::string reason) {
  v.ok = false;
  v.status = status;
  v.reason = std::move(reason);
  return v;
}

RequestCheck pd_refuse(RequestCheck v, std::string reason) {
  v.response_body = json{{"status", "invalid event"},
                         {"message", "Event object is invalid"},
                         {"errors", json::array({reason})}}
                        .dump();
  return refuse(std::move(v), 400, std::move(reason));
}

std::string text_or(const json& j, const char* key, const char* fallback) {
  const std::string* s = string_member(j, key);
  return s ? *s : fallback;
}

}  // namespace

std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    if (i + len > s.size()) len = 1;
    for (std::size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
        len = 1;  // invalid sequence: the lead byte counts as one character
        break;
      }
    }
    i += len;
    ++n;
  }
  return n;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[mac[i] >> 4];
    out += hex[mac[i] & 0xF];
  }
  return out;
}

RequestCheck check_pagerduty(std::string_view body, const std::string& fallback_dedup_key) {
  RequestCheck v;
  v.kind = "pagerduty";
  v.body = json::parse(body.begin(), body.end(), nullptr, false);
  if (v.body.is_discarded()) {
    v.body = nullptr;
    return pd_refuse(std::move(v), "body is not valid JSON");
  }
  const json& j = v.body;
  if (!j.is_object()) return pd_refuse(std::move(v), "body is not a JSON object");

  const std::string* routing_key = string_member(j, "routing_key");
  if (!routing_key || routing_key->empty())
    return pd_refuse(std::move(v), "'routing_key' is missing or not a string");

  static const std::set<std::string> actions = {"trigger", "acknowledge", "resolve"};
  const std::string* action = string_member(j, "event_action");
  if (!action || actions.count(*action) == 0)
    return pd_refuse(std::move(v), "'event_action' must be trigger, acknowledge or resolve");
  const bool trigger = *action == "trigger";

  std::string dedup_key;
  if (const json* d = member(j, "dedup_key"); d && !d->is_null()) {
    if (!d->is_string()) return pd_refuse(std::move(v), "'dedup_key' must be a string");
    dedup_key = d->get<std::string>();
    if (utf8_length(dedup_key) > kPagerDutyDedupKeyMax)
      return pd_refuse(std::move(v), "'dedup_key' is longer than 255 characters");
  }
  if (dedup_key.empty()) {
    if (!trigger) return pd_refuse(std::move(v), "'dedup_key' is required for " + *action);
    dedup_key = fallback_dedup_key;
  }

  std::string detail;
  if (trigger) {
    const json* p = member(j, "payload");
    if (!p || !p->is_object()) return pd_refuse(std::move(v), "'payload' is missing or not an object");
    const std::string* summary = string_member(*p, "summary");
    if (!summary || summary->empty())
      return pd_refuse(std::move(v), "'payload.summary' is missing or not a string");
    if (utf8_length(*summary) > kPagerDutySummaryMax)
      return pd_refuse(std::move(v), "'payload.summary' is longer than 1024 characters");
    const std::string* source = string_member(*p, "source");
    if (!source || source->empty())
      return pd_refuse(std::move(v), "'payload.source' is missing or not a string");
    static const std::set<std::string> severities = {"critical", "error", "warning", "info"};
    const std::string* severity = string_member(*p, "severity");
    if (!severity || severities.count(*severity) == 0)
      return pd_refuse(std::move(v),
                       "'payload.severity' must be critical, error, warning or info");
    detail = *severity + " " + in_quotes(*summary) + " source=" + one_line(*source, 64);
    if (const std::string* c = string_member(*p, "component")) detail += " component=" + one_line(*c, 64);
    if (const std::string* g = string_member(*p, "group")) detail += " group=" + one_line(*g, 64);
  }

  v.ok = true;
  v.status = 202;
  v.line = "pagerduty " + *action + " " + one_line(dedup_key, 255) + (detail.empty() ? "" : " ") + detail;
  v.response_body =
      json{{"status", "success"}, {"message", "Event processed"}, {"dedup_key", dedup_key}}.dump();
  return v;
}

RequestCheck check_slack(std::string_view path, std::string_view body) {
  RequestCheck v;
  v.kind = "slack";
  v.content_type = "text/plain";
  v.body = json::parse(body.begin(), body.end(), nullptr, false);
  if (v.body.is_discarded() || !v.body.is_object()) {
    if (v.body.is_discarded()) v.body = nullptr;
    v.response_body = "invalid_payload";
    return refuse(std::move(v), 400, "body is not a JSON object (invalid_payload)");
  }
  const std::string* text = string_member(v.body, "text");
  if (!text || text->empty()) {
    v.response_body = "no_text";
    return refuse(std::move(v), 400, "'text' is missing or empty (no_text)");
  }
  const json* blocks = member(v.body, "blocks");
  v.ok = true;
  v.status = 200;
  v.response_body = "ok";
  v.line = "slack " + std::string(path) + " " + in_quotes(*text) +
           (blocks && blocks->is_array() ? " (" + std::to_string(blocks->size()) + " blocks)" : "");
  return v;
}

RequestCheck check_webhook(std::string_view body, std::string_view signature_header,
                           std::string_view secret) {
  RequestCheck v;
  v.kind = "webhook";
  v.body = json::parse(body.begin(), body.end(), nullptr, false);
  if (v.body.is_discarded()) v.body = nullptr;
  if (!secret.empty()) {
    // Checked first and over the raw bytes: a receiver must not parse what it cannot trust.
    const std::string expected = "sha256=" + hmac_sha256_hex(secret, body);
    if (signature_header.empty()) {
      v.response_body = R"({"error":"missing X-Presence-Signature"})";
      return refuse(std::move(v), 401, "missing X-Presence-Signature header");
    }
    if (signature_header.size() != expected.size() ||
        CRYPTO_memcmp(signature_header.data(), expected.data(), expected.size()) != 0) {
      v.response_body = R"({"error":"bad signature"})";
      return refuse(std::move(v), 401, "X-Presence-Signature does not match the body");
    }
  }
  if (!v.body.is_object()) {
    v.response_body = R"({"error":"body is not a JSON object"})";
    return refuse(std::move(v), 400, "body is not a JSON object");
  }
  const json* ver = member(v.body, "v");
  if (!ver || !ver->is_number_integer() || ver->get<long long>() != 1) {
    v.response_body = R"({"error":"unsupported version: expected \"v\":1"})";
    return refuse(std::move(v), 400, "'v' must be 1");
  }
  const json& j = v.body;
  std::string seq = "?";
  if (const json* s = member(j, "seq"); s && s->is_number_integer()) seq = s->dump();
  v.ok = true;
  v.status = 200;
  v.response_body = R"({"status":"ok"})";
  v.line = "webhook seq=" + seq + " " + one_line(text_or(j, "action", "?"), 32) + " " +
           one_line(text_or(j, "type", "?"), 32) + " " + one_line(text_or(j, "severity", "?"), 16) +
           " " + one_line(text_or(j, "dedup_key", "?"), 255) + " " +
           in_quotes(text_or(j, "summary", "")) +
           (secret.empty() ? (signature_header.empty() ? " (unsigned)" : " (signature not checked)")
                           : " (signature ok)");
  return v;
}

}  // namespace presence::alert_sink
