// JSON string literals from arbitrary bytes (RFC 8259), for the places that write JSON by hand
// rather than through nlohmann::json: broker-ext's event payloads (the plugin links nothing else),
// presence-replay's JSON lines and presence-sim's status payloads (built without the service's
// libraries). Bytes that are not valid UTF-8 become U+FFFD, so the output is always valid JSON,
// whatever a broker or a device hands us. One copy (issue 12: there were three escapers, two of
// which passed broken UTF-8 through). Tested in test/unit/broker-ext/encode_test.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace presence::common {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when there is none (a continuation
// byte, an overlong form, a surrogate, beyond U+10FFFF, or truncated).
inline std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto byte_at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte_at(i);
  if (c < 0x80) return 1;
  std::size_t n;
  std::uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1Fu;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0Fu;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07u;
  } else {
    return 0;  // continuation byte, 0xC0/0xC1 (always overlong) or > 0xF4
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const unsigned char cc = byte_at(i + k);
    if ((cc & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (cc & 0x3Fu);
  }
  if (n == 3 && cp < 0x800) return 0;                      // overlong
  if (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;  // overlong / out of range
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;              // UTF-16 surrogate
  return n;
}

// Appends s as a JSON string literal (with quotes). Escapes '"', '\\' and every byte < 0x20.
inline void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20) {
            out += "\\u00";
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 0xF]);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += "\\uFFFD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  out.push_back('"');
}

inline std::string json_string(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  append_json_string(out, s);
  return out;
}

}  // namespace presence::common
