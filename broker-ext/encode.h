// JSON string escaping and the MQTT topic-level encoding of client ids (issue 4).
// Pure functions: no broker, no clock. The JSON "clientid" field is authoritative; the topic level
// is only an index (docs/broker-ext.md, "Topics").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "presence/common/json_string.h"

namespace presence::broker_ext {

// JSON string literals: bytes that are not valid UTF-8 become U+FFFD, so the output is always
// valid JSON even if a broker ever hands us a broken id (presence/common/json_string.h, shared with
// presence-replay and presence-sim; header-only, so the plugin still links nothing else).
using common::append_json_string;
using common::json_string;
using common::utf8_sequence_length;

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

}  // namespace presence::broker_ext
