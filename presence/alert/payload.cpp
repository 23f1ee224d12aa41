#include "presence/alert/payload.h"

#include "presence/alert/json_text.h"
#include "presence/common/iso8601.h"
#include "presence/core/words.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <ctime>
#include <map>
#include <nlohmann/json.hpp>

namespace presence::alert {
namespace {

using json = nlohmann::json;
using Action = core::AlertIntent::Action;
using Type = core::AlertIntent::Type;

std::string to_hex(const unsigned char* p, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 0xF]);
  }
  return out;
}

// Length of the UTF-8 sequence starting at s[i]; 1 for an invalid byte.
std::size_t utf8_len(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = 1;
  if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
  } else if (c >= 0xE0) {
    n = 3;
  } else if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  }
  if (n == 1 || i + n > s.size()) return 1;
  for (std::size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  }
  return n;
}

json details_object(const core::AlertIntent& intent) {
  json d = json::object();
  for (const auto& [k, v] : intent.details) d[k] = v;
  return d;
}

// Slack mrkdwn control characters (Slack docs, "Escaping text").
std::string slack_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// Slack: section text <= 3000 characters, field text <= 2000, message text <= 40000.
constexpr std::size_t kSlackSectionMax = 3000;
constexpr std::size_t kSlackFieldMax = 2000;

const char* slack_icon(const core::AlertIntent& i) {
  if (i.action == Action::Resolve) return ":large_green_circle:";
  if (i.action == Action::Notify) return ":information_source:";  // context, not a page
  switch (i.severity) {
    case core::Severity::Critical:
      return ":red_circle:";
    case core::Severity::Error:
      return ":red_circle:";
    case core::Severity::Warning:
      return ":large_orange_circle:";
    case core::Severity::Info:
      return ":large_blue_circle:";
  }
  return ":white_circle:";
}

json mrkdwn(const std::string& text) {
  json m;
  m["type"] = "mrkdwn";
  m["text"] = text;
  return m;
}

json section(const std::string& text) {
  json s;
  s["type"] = "section";
  s["text"] = mrkdwn(text);
  return s;
}

json context(const std::string& text) {
  json c;
  c["type"] = "context";
  c["elements"] = json::array();
  c["elements"].push_back(mrkdwn(text));
  return c;
}

std::string slack_headline(const core::AlertIntent& i) {
  // Notify (issue 11/18): context, not a page; the demo's alert view reads "NOTICE".
  const char* word = i.action == Action::Resolve  ? "RESOLVED"
                     : i.action == Action::Notify ? "NOTICE"
                                                  : "TRIGGERED";
  return std::string(word) + " " + wire_name(i.severity) + " " +
         (i.action == Action::Notify && !i.cls.empty() ? i.cls : std::string(wire_name(i.type)));
}

}  // namespace

// The words are the core's (core/words.h); PagerDuty's severities are the same four.
const char* wire_name(core::Severity s) { return core::to_string(s); }
const char* wire_name(Action a) { return core::to_string(a); }
const char* wire_name(Type t) { return core::to_string(t); }

std::string iso8601_utc(std::int64_t wall_ms) { return common::iso8601_utc_ms(wall_ms); }

std::string truncate_utf8(std::string_view s, std::size_t max_chars) {
  if (max_chars == 0) return {};
  std::size_t i = 0;
  std::size_t chars = 0;
  std::size_t before_last = 0;  // byte offset after max_chars - 1 code points
  while (i < s.size() && chars < max_chars) {
    if (chars == max_chars - 1) before_last = i;
    i += utf8_len(s, i);
    ++chars;
  }
  if (i >= s.size()) return std::string(s);                       // fits
  return std::string(s.substr(0, before_last)) + "\xE2\x80\xA6";  // "…"
}

namespace {

// At most max_bytes bytes, cut at a code point boundary, "…" appended when cut.
bool clamp_bytes(std::string& s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return false;
  std::size_t keep = max_bytes >= 3 ? max_bytes - 3 : 0;
  while (keep > 0 && (static_cast<unsigned char>(s[keep]) & 0xC0) == 0x80) --keep;
  s.resize(keep);
  if (max_bytes >= 3) s += "\xE2\x80\xA6";
  return true;
}

}  // namespace

bool clamp_intent(core::AlertIntent& intent) {
  bool cut = false;
  cut |= clamp_bytes(intent.summary, kMaxSummaryBytes);
  cut |= clamp_bytes(intent.component, kMaxFieldBytes);
  cut |= clamp_bytes(intent.group, kMaxFieldBytes);
  cut |= clamp_bytes(intent.cls, kMaxFieldBytes);
  // dedup_key is left whole: the outbox coalesces by it, and pagerduty_dedup_key hashes long ones.
  cut |= clamp_bytes(intent.dedup_key, 65536);
  bool details_cut = false;
  if (intent.details.size() > kMaxDetails) {
    intent.details.resize(kMaxDetails - 1);
    details_cut = true;
  }
  for (auto& [k, v] : intent.details) {
    details_cut |= clamp_bytes(k, kMaxDetailKey);
    if (k == "devices") {
      // Never half an id: cut after the last whole one and say so.
      if (v.size() > kMaxDeviceListBytes) {
        const std::size_t comma = v.rfind(',', kMaxDeviceListBytes - 4);
        v.resize(comma == std::string::npos ? 0 : comma);
        v += ",\xE2\x80\xA6";
        details_cut = true;
      }
      continue;
    }
    details_cut |= clamp_bytes(v, kMaxDetailValue);
  }
  if (details_cut) intent.details.emplace_back("presenced_truncated", "details");
  return cut || details_cut;
}

std::string pagerduty_dedup_key(std::string_view key) {
  if (key.size() <= kPagerDutyDedupKeyMax) return std::string(key);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
  const std::string suffix = "~" + to_hex(digest, 8);  // 17 bytes
  std::size_t keep = kPagerDutyDedupKeyMax - suffix.size();
  // Do not split a UTF-8 sequence: back up to a lead byte.
  while (keep > 0 && (static_cast<unsigned char>(key[keep]) & 0xC0) == 0x80) --keep;
  std::string out(key.substr(0, keep));
  out += suffix;
  return out;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return to_hex(out, len);
}

std::string pagerduty_body(const PagerDutyFields& fields, const OutboxEntry& entry) {
  const auto& i = entry.intent;
  json j;
  j["routing_key"] = fields.routing_key;
  j["event_action"] = wire_name(i.action);
  j["dedup_key"] = pagerduty_dedup_key(i.dedup_key);
  if (i.action == Action::Resolve) return json_text(j);

  json p;
  p["summary"] = truncate_utf8(i.summary.empty() ? std::string(wire_name(i.type)) : i.summary,
                               kPagerDutySummaryMax);
  p["source"] = fields.source.empty() ? std::string("presenced") : fields.source;
  p["severity"] = wire_name(i.severity);
  p["timestamp"] = iso8601_utc(entry.wall_ms);
  if (!i.component.empty()) p["component"] = i.component;
  if (!i.group.empty()) p["group"] = i.group;
  if (!i.cls.empty()) p["class"] = i.cls;
  json details = details_object(i);
  details["alert_type"] = wire_name(i.type);
  if (i.dedup_key.size() > kPagerDutyDedupKeyMax) details["dedup_key_full"] = i.dedup_key;
  p["custom_details"] = std::move(details);
  j["payload"] = std::move(p);
  j["client"] = "presenced";
  return json_text(j);
}

std::string slack_body(const OutboxEntry& entry) {
  const auto& i = entry.intent;
  const std::string headline = slack_headline(i);
  json blocks = json::array();
  std::string main = std::string(slack_icon(i)) + " *" + slack_escape(headline) + "*";
  if (!i.summary.empty()) main += "\n" + slack_escape(i.summary);
  blocks.push_back(section(truncate_utf8(main, kSlackSectionMax)));

  json fields = json::array();
  auto field = [&](std::string_view name, std::string_view value) {
    if (value.empty() || fields.size() >= 10) return;  // Slack: at most 10 fields
    fields.push_back(mrkdwn(
        truncate_utf8("*" + std::string(name) + "*\n" + slack_escape(value), kSlackFieldMax)));
  };
  field("component", i.component);
  field("group", i.group);
  field("class", i.cls);
  for (const auto& [k, v] : i.details) field(k, v);
  if (!fields.empty()) {
    json f;
    f["type"] = "section";
    f["fields"] = std::move(fields);
    blocks.push_back(std::move(f));
  }
  blocks.push_back(context(truncate_utf8(
      "dedup_key `" + slack_escape(i.dedup_key) + "` at " + iso8601_utc(entry.wall_ms),
      kSlackFieldMax)));

  json j;
  // "text" is what notifications and old clients show when blocks are present.
  // A Notify is context, not a page: the notification itself says so ("info" in the headline).
  j["text"] = truncate_utf8((i.action == Action::Notify ? std::string(":information_source: ") : std::string()) +
                                headline + (i.summary.empty() ? "" : ": " + i.summary),
                            3000);
  j["blocks"] = std::move(blocks);
  return json_text(j);
}

std::string slack_summary_body(const std::vector<OutboxEntry>& entries, std::size_t list_first) {
  std::size_t triggers = 0;
  std::size_t resolves = 0;
  std::size_t notices = 0;
  std::map<std::string, std::size_t> by_type;
  for (const auto& e : entries) {
    (e.intent.action == Action::Resolve ? resolves : e.intent.action == Action::Notify ? notices : triggers) += 1;
    by_type[wire_name(e.intent.type)] += 1;
  }
  const std::string headline = std::to_string(entries.size()) + " alerts (" +
                               std::to_string(triggers) + " triggered, " +
                               std::to_string(resolves) + " resolved" +
                               (notices > 0 ? ", " + std::to_string(notices) + " notices" : "") + ")";
  std::string types;
  for (const auto& [t, n] : by_type) {
    if (!types.empty()) types += ", ";
    types += t + ": " + std::to_string(n);
  }
  std::string list;
  const std::size_t shown = std::min(list_first, entries.size());
  for (std::size_t k = 0; k < shown; ++k) {
    const auto& i = entries[k].intent;
    list += "• " + std::string(slack_icon(i)) + " " + slack_escape(slack_headline(i));
    if (!i.summary.empty()) list += ": " + slack_escape(truncate_utf8(i.summary, 200));
    list += "\n";
  }
  if (entries.size() > shown) list += "…and " + std::to_string(entries.size() - shown) + " more";

  json blocks = json::array();
  blocks.push_back(
      section(truncate_utf8(":rotating_light: *" + headline + "*\n" + types, kSlackSectionMax)));
  if (!list.empty()) blocks.push_back(section(truncate_utf8(list, kSlackSectionMax)));
  blocks.push_back(context(
      "Summarised: more alerts were queued for this webhook than Slack's rate limit (about one "
      "message a second) lets through."));
  json j;
  j["text"] = "presenced: " + headline + "; " + types;
  j["blocks"] = std::move(blocks);
  return json_text(j);
}

std::string webhook_body(const OutboxEntry& entry) {
  const auto& i = entry.intent;
  json j;
  j["v"] = 1;
  j["seq"] = entry.seq;
  j["action"] = wire_name(i.action);
  j["type"] = wire_name(i.type);
  j["severity"] = wire_name(i.severity);
  j["dedup_key"] = i.dedup_key;
  j["summary"] = i.summary;
  j["component"] = i.component;
  j["group"] = i.group;
  j["class"] = i.cls;
  j["details"] = details_object(i);
  j["timestamp"] = iso8601_utc(entry.wall_ms);
  return json_text(j);
}

std::string webhook_signature(std::string_view secret, std::string_view body) {
  return "sha256=" + hmac_sha256_hex(secret, body);
}

}  // namespace presence::alert
