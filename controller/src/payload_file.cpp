#include "payload_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "ipp/error.hpp"
#include "task_record.hpp"

namespace ipp::hub {

namespace {

/// A file written from the start (replacing it); throws Error naming it when it cannot be.
class FileWriter {
 public:
  explicit FileWriter(const std::filesystem::path& path)
      : path_(path), fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) {
    if (fd_ < 0) fail(errno);
  }
  ~FileWriter() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;
  void write(const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t k = ::write(fd_, p, n);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) fail(k < 0 ? errno : ENOSPC);
      p += k;
      n -= static_cast<std::size_t>(k);
    }
  }
  void close() {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail(errno);
  }

 private:
  [[noreturn]] void fail(int err) const {
    throw Error(ErrorCode::unknown,
                fmt::format("cannot write '{}': {}", path_.string(), std::strerror(err)));
  }
  std::filesystem::path path_;
  int fd_;
};

}  // namespace

std::optional<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::filesystem::path& path, std::string_view blob) {
  FileWriter out(path);
  out.write(blob.data(), blob.size());
  out.close();
}

void write_file(const std::filesystem::path& path, const std::vector<Buffer>& parts) {
  FileWriter out(path);
  for (const auto& part : parts) {
    const auto len = part_length(part.size());
    out.write(len.data(), len.size());
    out.write(part.data(), part.size());
  }
  out.close();
}

}  // namespace ipp::hub
