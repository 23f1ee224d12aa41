// JSON string escaping and the MQTT topic-level encoding of client ids (issue 4).
// Pure functions: no broker, no clock. The JSON "clientid" field is authoritative; the topic level
// is only an index (docs/broker-ext.md, "Topics").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace presence::broker_ext {

// Appends s as a JSON string literal (with quotes). Escapes '"', '\\' and every byte < 0x20
// (RFC 8259); bytes that are not valid UTF-8 become U+FFFD, so the output is always valid JSON
// even if a broker ever hands us a broken id.
void append_json_string(std::string& out, std::string_view s);
std::string json_string(std::string_view s);

// Longest encoded client id we put into a topic level; longer ones use the hashed form.
inline constexpr std::size_t kMaxTopicLevel = 256;

// Client id -> one topic level. Percent-encodes (as %XX, upper-case hex) the bytes that would
// change the topic's meaning or break it: '%' itself, '+', '#', '/', control bytes < 0x20, 0x7F
// and bytes that are not valid UTF-8. Everything else (including other UTF-8) stays as is, so
// the common id "sensor-42" is its own level. If the encoding is longer than kMaxTopicLevel bytes
// the level is "%H" + 16 hex digits of FNV-1a-64 of the raw id: a form the encoder itself never
// produces ('H' is not a hex digit), so it cannot collide with an encoded id.
std::string encode_topic_level(std::string_view client_id);

// FNV-1a 64-bit, exposed for the tests of the hashed form.
std::uint64_t fnv1a64(std::string_view s);

// Length in bytes of the valid UTF-8 sequence starting at s[i], or 0 if it is not valid
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i);

}  // namespace presence::broker_ext
