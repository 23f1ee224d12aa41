#include "broker-ext/encode.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace presence::broker_ext;

TEST_CASE("json_string escapes quotes, backslashes and control bytes and round-trips") {
  const std::string id = std::string("a\"b\\c\nd\te\x01 f/+#\x7f") + "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
  const std::string lit = json_string(id);
  CHECK(lit == "\"a\\\"b\\\\c\\nd\\te\\u0001 f/+#\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
  CHECK(nlohmann::json::parse(lit).get<std::string>() == id);
}

TEST_CASE("json_string replaces invalid UTF-8 with U+FFFD so the payload stays valid JSON") {
  for (const std::string& bad : {std::string("\xff"), std::string("\xc0\xaf"), std::string("\xed\xa0\x80"),
                                std::string("\xe2\x82"), std::string("\xf4\x90\x80\x80"),
                                std::string("\x80")}) {
    const std::string lit = json_string("x" + bad + "y");
    CAPTURE(lit);
    auto parsed = nlohmann::json::parse(lit).get<std::string>();
    CHECK(parsed.front() == 'x');
    CHECK(parsed.back() == 'y');
    CHECK(parsed.find("\xef\xbf\xbd") != std::string::npos);
  }
}

TEST_CASE("utf8_sequence_length accepts exactly the valid forms") {
  CHECK(utf8_sequence_length("a", 0) == 1);
  CHECK(utf8_sequence_length("\xc2\x80", 0) == 2);
  CHECK(utf8_sequence_length("\xc1\xbf", 0) == 0);          // overlong
  CHECK(utf8_sequence_length("\xe0\x9f\xbf", 0) == 0);      // overlong 3-byte
  CHECK(utf8_sequence_length("\xef\xbf\xbf", 0) == 3);
  CHECK(utf8_sequence_length("\xed\x9f\xbf", 0) == 3);      // U+D7FF, last before surrogates
  CHECK(utf8_sequence_length("\xed\xa0\x80", 0) == 0);      // U+D800 surrogate
  CHECK(utf8_sequence_length("\xf4\x8f\xbf\xbf", 0) == 4);  // U+10FFFF
  CHECK(utf8_sequence_length("\xf4\x90\x80\x80", 0) == 0);  // U+110000
}

TEST_CASE("encode_topic_level keeps plain ids and percent-encodes what would change the topic") {
  CHECK(encode_topic_level("sensor-42") == "sensor-42");
  CHECK(encode_topic_level("a/b") == "a%2Fb");
  CHECK(encode_topic_level("a+b#c") == "a%2Bb%23c");
  CHECK(encode_topic_level("100%") == "100%25");
  CHECK(encode_topic_level("%2F") == "%252F");  // '%' is encoded, so decoding is unambiguous
  CHECK(encode_topic_level(std::string("t\x01\x7f", 3)) == "t%01%7F");
  CHECK(encode_topic_level("caf\xc3\xa9") == "caf\xc3\xa9");  // valid UTF-8 kept
  CHECK(encode_topic_level("x\xffy") == "x%FFy");               // invalid byte encoded
  CHECK(encode_topic_level("$dev") == "$dev");
}

TEST_CASE("encode_topic_level: boundary at kMaxTopicLevel bytes, then the %H hashed form") {
  const std::string at_limit(kMaxTopicLevel, 'a');
  CHECK(encode_topic_level(at_limit) == at_limit);
  const std::string over(kMaxTopicLevel + 1, 'a');
  const std::string h = encode_topic_level(over);
  CHECK(h.size() == 18);
  CHECK(h.rfind("%H", 0) == 0);
  CHECK(h != encode_topic_level(over + "b"));
  // 86 '/' encode to 258 bytes > 256: hashed although the raw id is short.
  CHECK(encode_topic_level(std::string(86, '/')).rfind("%H", 0) == 0);
  CHECK(encode_topic_level(std::string(85, '/')).size() == 255);
}
