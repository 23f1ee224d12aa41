// Checksummed, length-prefixed records: the one framing shared by the alert outbox and the state
// snapshot (issue 5, "Durability").
//
//   record = magic u32 "PRC1" | length u32 | crc32c(length bytes + payload) u32 | payload
//   (all integers little-endian)
//
// Why a per-record magic: incident 004 (one corrupted queue stopped a service). A reader that
// meets a bad checksum or a torn length does not give up on the file: it searches forward for the
// next magic whose checksum verifies, so one bad record costs that record, not the queue.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace presence::store {

inline constexpr std::uint32_t kRecordMagic = 0x31435250u;  // "PRC1" little-endian
inline constexpr std::size_t kRecordHeaderSize = 12;
// A record longer than this is treated as corruption (a torn length field), never allocated.
inline constexpr std::uint32_t kMaxRecordPayload = 64u * 1024u * 1024u;

// CRC-32C (Castagnoli), the checksum of iSCSI/ext4/LevelDB. crc32c("123456789") == 0xE3069283.
std::uint32_t crc32c(std::string_view data, std::uint32_t crc = 0);

// Appends one framed record holding payload to out.
void append_record(std::string& out, std::string_view payload);
// The same framing written in place, for a payload too big to copy (the 1 M-device snapshot):
// reserve_record appends a header to fill in and returns where it starts; the caller appends the
// payload; seal_record fills in the header over everything after it. Same bytes as append_record.
std::size_t reserve_record(std::string& out);
void seal_record(std::string& out, std::size_t header_at);

struct ScanStats {
  std::size_t records = 0;          // records whose checksum verified
  std::size_t corrupt_records = 0;  // places where a bad record was skipped
  std::size_t skipped_bytes = 0;    // bytes not part of any valid record
  bool truncated_tail = false;      // the data ended inside a record (crash mid-append)

  bool clean() const { return corrupt_records == 0 && skipped_bytes == 0 && !truncated_tail; }
};

// Calls on_record(payload) for every valid record of data, in order. Never throws on bad input:
// bad checksums, torn lengths and garbage are skipped and counted. A length over max_payload is
// a bad record (the snapshot, one record for the whole fleet, passes its own larger bound).
ScanStats scan_records(std::string_view data,
                       const std::function<void(std::string_view payload)>& on_record,
                       std::uint32_t max_payload = kMaxRecordPayload);

}  // namespace presence::store
