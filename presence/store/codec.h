// Compact little-endian binary encoding for record payloads (outbox entries, snapshots).
// Reader is bounds-checked: a payload that passed its checksum but is from a different version or
// was written by a bug reads as "bad" (ok() == false), never past its end.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace presence::store {

class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) { put(v, 4); }
  void u64(std::uint64_t v) { put(v, 8); }
  void i64(std::int64_t v) { put(static_cast<std::uint64_t>(v), 8); }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
  }
  void raw(std::string_view s) { out_.append(s); }
  void reserve(std::size_t bytes) { out_.reserve(bytes); }
  std::size_t size() const { return out_.size(); }
  const std::string& data() const { return out_; }
  std::string& buffer() { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void put(std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
  }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  std::uint8_t u8() { return static_cast<std::uint8_t>(get(1)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(get(4)); }
  std::uint64_t u64() { return get(8); }
  std::int64_t i64() { return static_cast<std::int64_t>(get(8)); }
  std::string str() {
    const std::uint32_t n = u32();
    if (!ok_ || n > data_.size() - pos_) {
      ok_ = false;
      return {};
    }
    std::string s(data_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  // A count of following items, each at least min_item_bytes long: rejects counts the remaining
  // bytes cannot hold, so a corrupt count never turns into a huge allocation.
  std::uint32_t count(std::size_t min_item_bytes) {
    const std::uint32_t n = u32();
    if (ok_ && min_item_bytes > 0 && n > (data_.size() - pos_) / min_item_bytes) ok_ = false;
    return ok_ ? n : 0;
  }
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == data_.size(); }

 private:
  std::uint64_t get(std::size_t bytes) {
    if (!ok_ || bytes > data_.size() - pos_) {
      ok_ = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (std::size_t i = bytes; i-- > 0;)
      v = (v << 8) | static_cast<unsigned char>(data_[pos_ + i]);
    pos_ += bytes;
    return v;
  }
  std::string_view data_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace presence::store
