// Prometheus text exposition helpers, shared by every room that contributes to /metrics
// (presence/api/health.cpp, presence/api/alert_metrics.cpp): one writer, one number format.
#pragma once

#include <cstdio>
#include <string>
#include <type_traits>

namespace presence::api::prom {

// "# HELP name help" and "# TYPE name type" lines that open a metric family.
inline void family(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// One sample line; labels is the text between the braces (already escaped), or empty.
// Integers print exactly; floating point with 17 significant digits (round-trips).
template <typename T>
void sample(std::string& out, const char* name, T value, const std::string& labels = {}) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += ' ';
  if constexpr (std::is_floating_point_v<T>) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", static_cast<double>(value));
    out += buf;
  } else {
    out += std::to_string(value);
  }
  out += '\n';
}

}  // namespace presence::api::prom
