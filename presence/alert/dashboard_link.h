// Links from a notification back to presenced's dashboard (issue 18): the device view for a device
// alert, the incident view for a fleet incident or its stragglers, the dashboard otherwise. One
// owner, so Alertmanager's generatorURL, the Teams card's button and the PagerDuty change event's
// link agree.
#pragma once

#include <string>
#include <string_view>

#include "presence/core/decision.h"

namespace presence::alert {

// Percent-encodes everything but RFC 3986 unreserved characters (a device id may hold '/', '#').
inline std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

inline std::string detail_of(const core::AlertIntent& i, std::string_view key) {
  for (const auto& [k, v] : i.details)
    if (k == key) return v;
  return {};
}

// dashboard_url + "/#device=<id>" | "/#incident=<n>" | "/"; "" when dashboard_url is empty.
inline std::string dashboard_link(std::string_view dashboard_url, const core::AlertIntent& i) {
  if (dashboard_url.empty()) return {};
  std::string base(dashboard_url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  using T = core::AlertIntent::Type;
  if ((i.type == T::DeviceOffline || i.type == T::DeviceFlapping) && !i.component.empty())
    return base + "/#device=" + url_encode(i.component);
  std::string incident = detail_of(i, "incident");
  // Some resolves carry only the dedup_key (docs/alert-policy.md): presence/incident/<n>.
  for (std::string_view prefix : {"presence/incident/", "presence/stragglers/"})
    if (incident.empty() && i.dedup_key.rfind(prefix, 0) == 0)
      incident = i.dedup_key.substr(prefix.size());
  if (!incident.empty()) return base + "/#incident=" + url_encode(incident);
  return base + "/";
}

}  // namespace presence::alert
