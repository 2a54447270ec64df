#include "shm_files.hpp"

#include <fcntl.h>

#include <cstring>
#include <system_error>
#include <thread>
#include <tuple>

#include <fmt/format.h>
#include <sodium.h>

namespace ipp::net::shm_files {

std::uint64_t pooled_size(const std::string& name) {
  if (name.rfind("p-", 0) != 0) return 0;
  return std::strtoull(name.c_str() + 2, nullptr, 10);
}

bool give_to_pool(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || st.st_nlink != 1 ||
      static_cast<std::size_t>(st.st_size) < kPoolMin)
    return false;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::uint64_t pooled = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    pooled += pooled_size(e.path().filename().string());
  if (pooled + static_cast<std::uint64_t>(st.st_size) > kPoolLimit) return false;
  unsigned char id[16];
  randombytes_buf(id, sizeof id);
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, id, sizeof id);
  const auto target = dir / fmt::format("p-{}-{}", st.st_size, hex);
  return ::rename(path.c_str(), target.c_str()) == 0;
}

bool copy_in(std::byte* to, const std::byte* from, std::size_t n, bool populate) {
  constexpr std::size_t kSliceAtLeast = std::size_t{32} << 20;
  const std::size_t threads =
      n < kParallelFrom
          ? 1
          : std::clamp<std::size_t>(
                std::min<std::size_t>(std::thread::hardware_concurrency(), n / kSliceAtLeast), 1,
                4);
  // Slices start on page boundaries: no two threads touch one page.
  const std::size_t slice = threads == 1 ? n : (n / threads + 4095) & ~std::size_t{4095};
  auto copy = [=](std::size_t at) {
    const std::size_t len = std::min(slice, n - at);
    if (populate && ::madvise(to + at, len, MADV_POPULATE_WRITE) != 0) return false;
    if (from != nullptr) std::memcpy(to + at, from + at, len);
    return true;
  };
  std::vector<std::thread> helpers;
  std::vector<char> ok((n + slice - 1) / slice, 0);
  std::size_t at = slice;
  try {
    for (; at < n; at += slice)
      helpers.emplace_back([&, at] { ok[at / slice] = copy(at) ? 1 : 0; });
  } catch (const std::system_error&) {
    // No thread to be had: this one copies what is left.
    for (; at < n; at += slice)
      ok[at / slice] = copy(at) ? 1 : 0;
  }
  ok[0] = copy(0) ? 1 : 0;
  for (auto& t : helpers)
    t.join();
  return std::all_of(ok.begin(), ok.end(), [](char c) { return c != 0; });
}

bool take_from_pool(const std::filesystem::path& dir, std::size_t size, const std::string& path) {
  if (size < kPoolMin) return false;
  struct Candidate {
    bool mapped;
    std::uint64_t size;
    std::filesystem::path path;
  };
  std::vector<Candidate> fitting;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::uint64_t n = pooled_size(e.path().filename().string());
    if (n < size || n > 2 * static_cast<std::uint64_t>(size)) continue;
    struct stat st {};
    const bool mapped =
        ::stat(e.path().c_str(), &st) == 0 && MappingCache::instance().has(st.st_dev, st.st_ino);
    fitting.push_back({mapped, n, e.path()});
  }
  std::sort(fitting.begin(), fitting.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(b.mapped, a.size) < std::tie(a.mapped, b.size);
  });
  for (const auto& c : fitting) {
    if (::rename(c.path.c_str(), path.c_str()) == 0) return true;  // else another took it first
  }
  return false;
}

std::optional<Writable> open_writable(const std::string& path, std::size_t size) {
  Writable w;
  w.fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (w.fd < 0) return std::nullopt;
  if (::fstat(w.fd, &w.st) != 0 || static_cast<std::size_t>(w.st.st_size) < size ||
      (static_cast<std::size_t>(w.st.st_size) != size &&
       ::ftruncate(w.fd, static_cast<off_t>(size)) != 0)) {
    ::close(w.fd);
    return std::nullopt;
  }
  if (auto kept = MappingCache::instance().take(w.st.st_dev, w.st.st_ino)) {
    if (kept->size >= size) {
      MappingCache::instance().reused();
      ::close(kept->fd);
      w.base = kept->base;
      w.mapped = kept->size;
      return w;
    }
    MappingCache::release(*kept);
  }
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, w.fd, 0);
  if (base == MAP_FAILED) {
    ::close(w.fd);
    return std::nullopt;
  }
  w.base = static_cast<std::byte*>(base);
  w.mapped = size;
  return w;
}

std::optional<Writable> create_writable(const std::string& path, std::size_t size, bool allocate) {
  Writable w;
  w.fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (w.fd < 0) return std::nullopt;
  bool sized = false;
  if (allocate) {
    int rc = 0;
    do {
      rc = ::posix_fallocate(w.fd, 0, static_cast<off_t>(size));
    } while (rc == EINTR);
    sized = rc == 0;
  } else {
    sized = ::ftruncate(w.fd, static_cast<off_t>(size)) == 0;
  }
  void* base = MAP_FAILED;
  if (sized && ::fstat(w.fd, &w.st) == 0)
    base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | (allocate ? MAP_POPULATE : 0),
                  w.fd, 0);
  if (base == MAP_FAILED) {
    ::close(w.fd);
    ::unlink(path.c_str());
    return std::nullopt;
  }
  w.base = static_cast<std::byte*>(base);
  w.mapped = size;
  return w;
}

void discard(const std::string& path, const Writable& w) {
  ::munmap(w.base, w.mapped);
  ::close(w.fd);
  ::unlink(path.c_str());
}

void done_writing(const SharedMemory* shm, const Writable& w) {
  if (w.mapped >= kPoolMin && w.fd >= 0) {
    MappingCache::instance().put({shm, w.st.st_dev, w.st.st_ino, w.fd, w.base, w.mapped, {}});
    return;
  }
  ::munmap(w.base, w.mapped);
  if (w.fd >= 0) ::close(w.fd);
}

}  // namespace ipp::net::shm_files
