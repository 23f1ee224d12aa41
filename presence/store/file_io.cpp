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

// The failure of `what` on path, with errno's text.
Done fail(std::string_view what, const std::string& path) {
  return Done::fail(std::string(what) + " " + path + ": " + std::strerror(errno));
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

common::Result<std::optional<std::string>> read_file(const std::string& path) {
  using Read = common::Result<std::optional<std::string>>;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Read::success(std::nullopt);
    return Read::fail(fail("open", path).error);
  }
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      Read r = Read::fail(fail("read", path).error);
      ::close(fd);
      return r;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return Read::success(std::move(out));
}

Done fsync_parent_dir(const std::string& path) {
  const std::string dir = parent_dir(path);
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail("open dir", dir);
  Done r;
  if (::fsync(fd) != 0) r = fail("fsync dir", dir);
  ::close(fd);
  return r;
}

Done write_file_atomic(const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail("create", tmp);
  if (!write_all(fd, data)) {
    Done r = fail("write", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return r;
  }
  if (::fsync(fd) != 0) {
    Done r = fail("fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return r;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Done r = fail("rename", tmp);
    ::unlink(tmp.c_str());
    return r;
  }
  return fsync_parent_dir(path);
}

AppendFile::~AppendFile() { close(); }

Done AppendFile::open(const std::string& path) {
  close();
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) return fail("open", path);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    Done r = fail("stat", path);
    close();
    return r;
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
  return {};
}

void AppendFile::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  size_ = 0;
}

Done AppendFile::append(std::string_view data) {
  if (fd_ < 0) return Done::fail("append: file not open");
  if (!write_all(fd_, data)) return fail("append", "outbox");
  size_ += data.size();
  return {};
}

Done AppendFile::sync() {
  if (fd_ < 0) return {};
  if (::fdatasync(fd_) != 0) return fail("fdatasync", "outbox");
  return {};
}

}  // namespace presence::store
