#include "presence/store/record.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "presence/store/codec.h"
#include "presence/store/file_io.h"
#include "test/support/process.h"

using namespace presence::store;

namespace {

std::vector<std::string> scan_all(std::string_view data, ScanStats* stats = nullptr) {
  std::vector<std::string> out;
  const ScanStats s = scan_records(data, [&](std::string_view p) { out.emplace_back(p); });
  if (stats != nullptr) *stats = s;
  return out;
}

std::string three_records() {
  std::string data;
  append_record(data, "alpha");
  append_record(data, "");
  append_record(data, std::string(1000, 'x'));
  return data;
}

}  // namespace

TEST_CASE("crc32c matches the Castagnoli check value") {
  CHECK(crc32c("123456789") == 0xE3069283u);
  CHECK(crc32c("") == 0u);
  // Incremental == one shot.
  CHECK(crc32c("6789", crc32c("12345")) == 0xE3069283u);
}

TEST_CASE("records round-trip, including an empty payload") {
  ScanStats s;
  const auto got = scan_all(three_records(), &s);
  REQUIRE(got.size() == 3);
  CHECK(got[0] == "alpha");
  CHECK(got[1].empty());
  CHECK(got[2] == std::string(1000, 'x'));
  CHECK(s.clean());
  CHECK(s.records == 3);
  CHECK(scan_all("").empty());
}

TEST_CASE("a truncated tail is detected at every cut point and earlier records survive") {
  std::string data;
  append_record(data, "first");
  const std::size_t first_end = data.size();
  append_record(data, "second-record");
  // Every proper prefix that cuts into the second record: first survives, tail flagged.
  for (std::size_t cut = first_end + 1; cut < data.size(); ++cut) {
    ScanStats s;
    const auto got = scan_all(std::string_view(data).substr(0, cut), &s);
    INFO("cut=" << cut);
    REQUIRE(got.size() == 1);
    CHECK(got[0] == "first");
    CHECK(s.truncated_tail);
    CHECK(s.corrupt_records == 0);
    CHECK(s.skipped_bytes == cut - first_end);
  }
  // Cut exactly at the boundary: clean.
  ScanStats s;
  CHECK(scan_all(std::string_view(data).substr(0, first_end), &s).size() == 1);
  CHECK(s.clean());
}

TEST_CASE("a flipped byte anywhere costs exactly the record it is in") {
  const std::string clean = three_records();
  std::string one;
  append_record(one, "alpha");
  const std::size_t first_len = one.size();
  for (std::size_t i = 0; i < first_len; ++i) {
    std::string data = clean;
    data[i] = static_cast<char>(data[i] ^ 0x5A);
    ScanStats s;
    const auto got = scan_all(data, &s);
    INFO("flipped byte " << i);
    REQUIRE(got.size() == 2);
    CHECK(got[0].empty());
    CHECK(got[1] == std::string(1000, 'x'));
    CHECK(s.corrupt_records == 1);
    CHECK_FALSE(s.truncated_tail);
    CHECK(s.skipped_bytes == first_len);
  }
}

TEST_CASE("a corrupt middle record is skipped and later ones are found") {
  std::string data;
  append_record(data, "one");
  const std::size_t mid = data.size();
  append_record(data, "two-is-corrupted");
  append_record(data, "three");
  data[mid + kRecordHeaderSize + 2] ^= 0x01;  // payload byte of "two"
  ScanStats s;
  const auto got = scan_all(data, &s);
  REQUIRE(got.size() == 2);
  CHECK(got[0] == "one");
  CHECK(got[1] == "three");
  CHECK(s.corrupt_records == 1);
}

TEST_CASE("garbage, a huge length and a magic inside a payload never crash") {
  ScanStats s;
  CHECK(scan_all(std::string(100, '\xff'), &s).empty());
  CHECK(s.corrupt_records == 1);
  CHECK(s.skipped_bytes == 100);

  std::string huge;
  append_record(huge, "x");
  huge[4] = '\xff';
  huge[5] = '\xff';
  huge[6] = '\xff';
  huge[7] = '\x7f';  // length > kMaxRecordPayload
  CHECK(scan_all(huge, &s).empty());
  CHECK_FALSE(s.clean());

  // A payload that itself contains the record magic and a plausible header.
  std::string inner;
  append_record(inner, "fake");
  std::string data;
  append_record(data, inner);
  append_record(data, "after");
  const auto got = scan_all(data, &s);
  REQUIRE(got.size() == 2);
  CHECK(got[0] == inner);
  CHECK(got[1] == "after");
  CHECK(s.clean());
}

TEST_CASE("codec reader is bounds-checked") {
  Writer w;
  w.u8(7);
  w.u32(0xDEADBEEF);
  w.u64(1ull << 40);
  w.i64(-5);
  w.str("hello");
  Reader r(w.data());
  CHECK(r.u8() == 7);
  CHECK(r.u32() == 0xDEADBEEFu);
  CHECK(r.u64() == (1ull << 40));
  CHECK(r.i64() == -5);
  CHECK(r.str() == "hello");
  CHECK(r.ok());
  CHECK(r.at_end());
  CHECK(r.u8() == 0);
  CHECK_FALSE(r.ok());

  Writer bad;
  bad.u32(1000000);  // string length beyond the data
  Reader rb(bad.data());
  CHECK(rb.str().empty());
  CHECK_FALSE(rb.ok());

  Writer cnt;
  cnt.u32(0xFFFFFFFF);
  Reader rc(cnt.data());
  CHECK(rc.count(1) == 0);
  CHECK_FALSE(rc.ok());
}

TEST_CASE("write_file_atomic replaces the file and leaves no temp behind") {
  presence::test::TempDir dir;
  const std::string path = dir.file("f");
  REQUIRE(write_file_atomic(path, "one").ok());
  REQUIRE(write_file_atomic(path, "two").ok());
  const auto got = read_file(path);
  REQUIRE(got.ok());
  REQUIRE(got.value.has_value());
  CHECK(*got.value == "two");
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  const auto missing = read_file(dir.file("missing"));
  CHECK(missing.ok());  // missing is not an error: a first start
  CHECK_FALSE(missing.value.has_value());
  const auto refused = write_file_atomic(dir.file("no/such/dir/f"), "x");
  CHECK_FALSE(refused.ok());
  CHECK(refused.error.find("create " + dir.file("no/such/dir/f") + ".tmp: ") == 0);
  // A directory where a file is expected: it exists but cannot be read as one.
  const auto unreadable = read_file(dir.path());
  CHECK_FALSE(unreadable.ok());
  CHECK(unreadable.error.find("read " + dir.path() + ": ") == 0);

  AppendFile f;
  CHECK_FALSE(f.append("x").ok());  // not open
  REQUIRE(f.open(dir.file("log")).ok());
  REQUIRE(f.append("abc").ok());
  REQUIRE(f.sync().ok());
  CHECK(f.size() == 3);
  f.close();
  REQUIRE(f.open(dir.file("log")).ok());
  CHECK(f.size() == 3);
}

TEST_CASE("issue 16: a record framed in place (reserve_record, seal_record) is byte for byte append_record") {
  for (const std::string& payload : {std::string(), std::string("alpha"), std::string(5000, 'x')}) {
    std::string want = "prefix";
    append_record(want, payload);
    std::string got = "prefix";
    const std::size_t at = reserve_record(got);
    CHECK(at == 6);
    got += payload;
    seal_record(got, at);
    CHECK(got == want);
  }
}
