#include "broker-ext/encode.h"

#include <cstdint>

namespace presence::broker_ext {

namespace {
constexpr char kHex[] = "0123456789ABCDEF";

unsigned char byte_at(std::string_view s, std::size_t i) { return static_cast<unsigned char>(s[i]); }
}  // namespace

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
