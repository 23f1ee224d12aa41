#include "broker-ext/encode.h"

#include <cstdint>

namespace presence::broker_ext {

namespace {
constexpr char kHex[] = "0123456789ABCDEF";

unsigned char byte_at(std::string_view s, std::size_t i) { return static_cast<unsigned char>(s[i]); }
}  // namespace

std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const unsigned char c = byte_at(s, i);
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
    const unsigned char cc = byte_at(s, i + k);
    if ((cc & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (cc & 0x3Fu);
  }
  if (n == 3 && cp < 0x800) return 0;                      // overlong
  if (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;  // overlong / out of range
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;              // UTF-16 surrogate
  return n;
}

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = byte_at(s, i);
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

std::string json_string(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  append_json_string(out, s);
  return out;
}

std::uint64_t fnv1a64(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char ch : s) {
    h ^= static_cast<unsigned char>(ch);
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string encode_topic_level(std::string_view id) {
  std::string out;
  out.reserve(id.size());
  auto pct = [&out](unsigned char c) {
    out.push_back('%');
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xF]);
  };
  std::size_t i = 0;
  while (i < id.size()) {
    const unsigned char c = byte_at(id, i);
    if (c < 0x80) {
      if (c == '%' || c == '+' || c == '#' || c == '/' || c < 0x20 || c == 0x7F) {
        pct(c);
      } else {
        out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(id, i);
    if (n == 0) {
      pct(c);
      ++i;
    } else {
      out.append(id.substr(i, n));
      i += n;
    }
  }
  if (out.size() > kMaxTopicLevel) {
    const std::uint64_t h = fnv1a64(id);
    out = "%H";
    for (int shift = 60; shift >= 0; shift -= 4) out.push_back(kHex[(h >> shift) & 0xF]);
  }
  return out;
}

}  // namespace presence::broker_ext
