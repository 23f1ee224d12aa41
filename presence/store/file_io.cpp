#include "presence/store/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "presence/common/log.h"

namespace presence::store {
namespace {

bool fail(std::string* error, std::string_view what, const std::string& path) {
  if (error != nullptr) {
    *error = std::string(what) + " " + path + ": " + std::strerror(errno);
  }
  return false;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

ReadStatus read_file(const std::string& path, std::string& out, std::string* error) {
  out.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return ReadStatus::Missing;
    fail(error, "open", path);
    return ReadStatus::Error;
  }
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(error, "read", path);
      ::close(fd);
      return ReadStatus::Error;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return ReadStatus::Ok;
}

bool fsync_parent_dir(const std::string& path, std::string* error) {
  const std::string dir = parent_dir(path);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(error, "open dir", dir);
  const bool ok = ::fsync(fd) == 0;
  if (!ok) fail(error, "fsync dir", dir);
  ::close(fd);
  return ok;
}

bool write_file_atomic(const std::string& path, std::string_view data, std::string* error) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail(error, "create", tmp);
  if (!write_all(fd, data)) {
    fail(error, "write", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::fsync(fd) != 0) {
    fail(error, "fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return false;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    fail(error, "rename", tmp);
    ::unlink(tmp.c_str());
    return false;
  }
  return fsync_parent_dir(path, error);
}

AppendFile::~AppendFile() { close(); }

bool AppendFile::open(const std::string& path, std::string* error) {
  close();
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) return fail(error, "open", path);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    fail(error, "stat", path);
    close();
    return false;
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
  return true;
}

void AppendFile::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  size_ = 0;
}

bool AppendFile::append(std::string_view data, std::string* error) {
  if (fd_ < 0) {
    if (error != nullptr) *error = "append: file not open";
    return false;
  }
  if (!write_all(fd_, data)) return fail(error, "append", "outbox");
  size_ += data.size();
  return true;
}

bool AppendFile::sync(std::string* error) {
  if (fd_ < 0) return true;
  if (::fdatasync(fd_) != 0) return fail(error, "fdatasync", "outbox");
  return true;
}

}  // namespace presence::store
