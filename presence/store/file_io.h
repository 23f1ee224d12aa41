// Durable file primitives shared by the outbox and the snapshot (one implementation, issue 5).
// POSIX underneath: write, fsync, rename, fsync of the directory so the rename itself survives a
// power cut. Errors come back as a common::Result with a message ("rename <path>.tmp: No space
// left on device"), never as exceptions (docs/architecture.md, "Errors").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "presence/common/result.h"

namespace presence::store {

using Done = common::Result<void>;

// The whole file; value nullopt when it does not exist (a first start), an error when it exists
// but cannot be read.
common::Result<std::optional<std::string>> read_file(const std::string& path);

// Replaces path with data atomically: write path.tmp, fsync it, rename over path, fsync the
// directory. A crash at any point leaves either the old or the new file, never a mix.
Done write_file_atomic(const std::string& path, std::string_view data);

// fsync of the directory holding path (makes a create/rename/unlink durable).
Done fsync_parent_dir(const std::string& path);

// An append-only file descriptor. Not thread-safe.
class AppendFile {
 public:
  AppendFile() = default;
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  // Opens (creating if needed) for appending.
  Done open(const std::string& path);
  void close();
  bool is_open() const { return fd_ >= 0; }

  // Writes all of data at the end of the file (retrying short writes and EINTR).
  Done append(std::string_view data);
  // fdatasync: everything appended so far is on stable storage when this returns ok.
  Done sync();
  std::uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

}  // namespace presence::store
