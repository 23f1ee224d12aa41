#include "presence/store/record.h"

#include <array>
#include <cstring>

namespace presence::store {
namespace {

constexpr std::array<std::uint32_t, 256> make_crc32c_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
    table[i] = c;
  }
  return table;
}
constexpr auto kCrc32cTable = make_crc32c_table();

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}

std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

std::uint32_t crc32c(std::string_view data, std::uint32_t crc) {
  crc = ~crc;
  for (char ch : data)
    crc = kCrc32cTable[(crc ^ static_cast<unsigned char>(ch)) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

void append_record(std::string& out, std::string_view payload) {
  const auto length = static_cast<std::uint32_t>(payload.size());
  std::string len_bytes;
  put_u32(len_bytes, length);
  put_u32(out, kRecordMagic);
  out += len_bytes;
  put_u32(out, crc32c(payload, crc32c(len_bytes)));
  out.append(payload);
}

std::size_t reserve_record(std::string& out) {
  const std::size_t at = out.size();
  out.append(kRecordHeaderSize, '\0');
  return at;
}

void seal_record(std::string& out, std::size_t header_at) {
  const std::size_t start = header_at + kRecordHeaderSize;
  const auto length = static_cast<std::uint32_t>(out.size() - start);
  std::string header;
  put_u32(header, kRecordMagic);
  put_u32(header, length);
  const std::string_view payload(out.data() + start, length);
  put_u32(header, crc32c(payload, crc32c(std::string_view(header.data() + 4, 4))));
  out.replace(header_at, kRecordHeaderSize, header);
}

ScanStats scan_records(std::string_view data,
                       const std::function<void(std::string_view payload)>& on_record,
                       std::uint32_t max_payload) {
  ScanStats stats;
  std::size_t pos = 0;
  // A bad region runs from the first byte that did not start a valid record to the next one that
  // does. It counts as one corrupt record, or as a truncated tail if it reaches the end of the data
  // and began as a record cut short (what a crash in the middle of an append leaves behind).
  bool in_bad_region = false;
  bool region_is_torn = false;
  auto bad_byte = [&](bool torn) {
    if (!in_bad_region) {
      in_bad_region = true;
      region_is_torn = torn;
    }
    ++stats.skipped_bytes;
    ++pos;
  };
  while (pos < data.size()) {
    const std::size_t left = data.size() - pos;
    const char* p = data.data() + pos;
    if (left < kRecordHeaderSize) {
      const bool torn = left >= 4 ? get_u32(p) == kRecordMagic : true;
      bad_byte(torn);
      continue;
    }
    if (get_u32(p) != kRecordMagic) {
      bad_byte(false);
      continue;
    }
    const std::uint32_t length = get_u32(p + 4);
    if (length > max_payload) {
      bad_byte(false);
      continue;
    }
    if (length > left - kRecordHeaderSize) {
      bad_byte(true);
      continue;
    }
    const std::string_view payload(p + kRecordHeaderSize, length);
    if (crc32c(payload, crc32c(std::string_view(p + 4, 4))) != get_u32(p + 8)) {
      bad_byte(false);
      continue;
    }
    if (in_bad_region) {
      ++stats.corrupt_records;
      in_bad_region = false;
    }
    ++stats.records;
    on_record(payload);
    pos += kRecordHeaderSize + length;
  }
  if (in_bad_region) {
    if (region_is_torn) {
      stats.truncated_tail = true;
    } else {
      ++stats.corrupt_records;
    }
  }
  return stats;
}

}  // namespace presence::store
