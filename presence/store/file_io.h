// Durable file primitives shared by the outbox and the snapshot (one implementation, issue 5).
// POSIX underneath: write, fsync, rename, fsync of the directory so the rename itself survives a
// power cut. Errors come back as false + a message, never as exceptions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace presence::store {

enum class ReadStatus { Ok, Missing, Error };

// Reads the whole file into out.
ReadStatus read_file(const std::string& path, std::string& out, std::string* error);

// Replaces path with data atomically: write path.tmp, fsync it, rename over path, fsync the
// directory. A crash at any point leaves either the old or the new file, never a mix.
bool write_file_atomic(const std::string& path, std::string_view data, std::string* error);

// fsync of the directory holding path (makes a create/rename/unlink durable).
bool fsync_parent_dir(const std::string& path, std::string* error);

// An append-only file descriptor. Not thread-safe.
class AppendFile {
 public:
  AppendFile() = default;
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  // Opens (creating if needed) for appending.
  bool open(const std::string& path, std::string* error);
  void close();
  bool is_open() const { return fd_ >= 0; }

  // Writes all of data at the end of the file (retrying short writes and EINTR).
  bool append(std::string_view data, std::string* error);
  // fdatasync: everything appended so far is on stable storage when this returns true.
  bool sync(std::string* error);
  std::uint64_t size() const { return size_; }

 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

}  // namespace presence::store
