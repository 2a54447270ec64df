#pragma once

// The files of shared memory a process writes: the pool of large files kept for reuse, the
// writable mappings kept with them, and how a part is copied in. Private to ipp::net; used by
// shm.cpp.

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ipp/net/shm.hpp"

namespace ipp::net::shm_files {

// Files this large are kept when their last user lets go (`p-<size>-<id>`), for the next
// large part of about that size: writing into pages that exist runs at memory speed, while a
// fresh file's pages are allocated one by one as they are first written (half the speed or
// less, and much less for memory the machine has not used yet). At most kPoolLimit bytes per
// directory are kept; sweep() removes what waited longer than kPoolIdle.
inline constexpr std::size_t kPoolMin = std::size_t{4} << 20;
inline constexpr std::uint64_t kPoolLimit = std::uint64_t{2} << 30;
inline constexpr auto kPoolIdle = std::chrono::seconds(30);

/// The size a pooled file's name says, or 0 for other names.
std::uint64_t pooled_size(const std::string& name);

/// Puts the file at `path` (this process's only name for it) in the pool of its directory;
/// false when it does not belong there (small, shared, or the pool is full).
bool give_to_pool(const std::string& path);

/// Writable mappings of large files this process wrote into, kept when its use of one ends,
/// for the next time it takes the same file from the pool. Mapping 1 GiB of tmpfs with its
/// pages present takes about 65 ms here and unmapping it 30 ms, against 85 ms to copy a part
/// into it: a push of a large array that comes back to a file its sender mapped before costs
/// the copy alone. Only a process that took a file from the pool (a rename only one process
/// wins) writes into it, so a kept mapping is never written while another process holds the
/// file. Each entry keeps the file open, to see when it has no name left (the pool's time ran
/// out, the cluster stopped): the mapping alone would keep its pages then, and trim() drops it.
class MappingCache {
 public:
  struct Entry {
    const SharedMemory* shm = nullptr;  // the directory the file is in
    dev_t dev = 0;
    ino_t ino = 0;
    int fd = -1;
    std::byte* base = nullptr;
    std::size_t size = 0;  // of the mapping, which may reach past the file's end
    std::chrono::steady_clock::time_point used;
  };

  static MappingCache& instance() {
    static auto* cache = new MappingCache();  // outlives static destructors
    return *cache;
  }

  /// Keeps `e` (its mapping and descriptor) for later; the oldest go past kPoolLimit bytes.
  void put(Entry e) {
    e.used = std::chrono::steady_clock::now();
    std::vector<Entry> evicted;
    {
      std::lock_guard lock(mutex_);
      bytes_ += e.size;
      entries_.push_back(e);
      while (bytes_ > kPoolLimit || entries_.size() > kMaxEntries) {
        evicted.push_back(entries_.front());
        bytes_ -= entries_.front().size;
        entries_.erase(entries_.begin());
      }
      count_.store(entries_.size(), std::memory_order_relaxed);
    }
    for (auto& x : evicted)
      release(x);
    // A process that does not call SharedMemory::trim() still lets go of files gone meanwhile.
    const auto now = e.used.time_since_epoch().count();
    auto last = last_trim_.load(std::memory_order_relaxed);
    if (now - last > std::chrono::steady_clock::duration(std::chrono::seconds(1)).count() &&
        last_trim_.compare_exchange_strong(last, now))
      trim(kPoolIdle);
  }

  /// The kept mapping of the file (dev, ino), now the caller's (mapping and descriptor).
  std::optional<Entry> take(dev_t dev, ino_t ino) {
    std::lock_guard lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->dev != dev || it->ino != ino) continue;
      Entry e = *it;
      bytes_ -= e.size;
      entries_.erase(it);
      count_.store(entries_.size(), std::memory_order_relaxed);
      return e;
    }
    return std::nullopt;
  }

  [[nodiscard]] bool has(dev_t dev, ino_t ino) {
    std::lock_guard lock(mutex_);
    return std::any_of(entries_.begin(), entries_.end(),
                       [&](const Entry& e) { return e.dev == dev && e.ino == ino; });
  }

  /// Drops the mappings unused for `idle`, those whose file has no name left, and (with
  /// `shm` set) every one of that directory.
  void trim(std::chrono::steady_clock::duration idle, const SharedMemory* shm = nullptr) {
    if (count_.load(std::memory_order_relaxed) == 0) return;
    const auto now = std::chrono::steady_clock::now();
    std::vector<Entry> dropped;
    {
      std::lock_guard lock(mutex_);
      std::erase_if(entries_, [&](const Entry& e) {
        struct stat st {};
        const bool drop =
            e.shm == shm || now - e.used >= idle || ::fstat(e.fd, &st) != 0 || st.st_nlink == 0;
        if (drop) {
          dropped.push_back(e);
          bytes_ -= e.size;
        }
        return drop;
      });
      count_.store(entries_.size(), std::memory_order_relaxed);
    }
    for (auto& x : dropped)
      release(x);
  }

  /// Counts a file written through a kept mapping.
  void reused() { reused_.fetch_add(1, std::memory_order_relaxed); }

  [[nodiscard]] SharedMemory::KeptMappings usage() {
    std::lock_guard lock(mutex_);
    return {entries_.size(), bytes_, reused_.load(std::memory_order_relaxed)};
  }

  static void release(const Entry& e) noexcept {
    ::munmap(e.base, e.size);
    ::close(e.fd);
  }

 private:
  static constexpr std::size_t kMaxEntries = 64;
  std::mutex mutex_;
  std::vector<Entry> entries_;  // oldest first
  std::uint64_t bytes_ = 0;
  std::atomic<std::size_t> count_{0};
  std::atomic<std::uint64_t> reused_{0};
  std::atomic<std::chrono::steady_clock::rep> last_trim_{0};
};

/// Parts this large are copied into shared memory by several threads.
inline constexpr std::size_t kParallelFrom = std::size_t{64} << 20;

/// Copies `n` bytes (none when `from` is null) into a writable mapping of shared memory; with
/// `populate`, first makes its pages (a new file's): false when they cannot be had (the tmpfs
/// is full, or a kernel older than 5.14), where a write through the mapping would kill the
/// process with SIGBUS instead. One thread copies at well under the memory's speed (12 GB/s
/// here against 19 GB/s for two, and for pages the machine hands out for the first time 0.4
/// to 0.6 GB/s against 0.8 to 1.9), so parts of kParallelFrom or more are copied in slices of
/// at least 32 MiB by up to four threads, the caller's among them.
bool copy_in(std::byte* to, const std::byte* from, std::size_t n, bool populate);

/// Takes a pooled file of `dir` that holds `size` bytes (and not more than twice that) under
/// the new name `path`; false when there is none. Files this process keeps a mapping of come
/// first, then the smallest.
bool take_from_pool(const std::filesystem::path& dir, std::size_t size, const std::string& path);

/// A writable mapping of a file, and the file open (where the mapping may be kept).
struct Writable {
  int fd = -1;  // -1 once closed
  struct stat st {};
  std::byte* base = nullptr;
  std::size_t mapped = 0;  // the mapping's size: at least the file's
};

/// Opens the file at `path` (which this process just took from the pool) and maps `size`
/// bytes of it writable, cut to that size, its pages present: a mapping of it that this
/// process kept when it wrote into it before, or a new one.
std::optional<Writable> open_writable(const std::string& path, std::size_t size);

/// Makes the new file `path` of `size` bytes and maps it writable: its pages not made yet, or
/// with `allocate`, allocated now and present (a full tmpfs says so here, not with a SIGBUS
/// at the first write).
std::optional<Writable> create_writable(const std::string& path, std::size_t size,
                                        bool allocate = false);

/// Undoes create_writable(): the mapping, the descriptor and the file go.
void discard(const std::string& path, const Writable& w);

/// Ends this process's use of a writable mapping of a file of `shm`: large ones (with the
/// file open) are kept for the next time the file comes back from the pool, others unmapped.
void done_writing(const SharedMemory* shm, const Writable& w);

}  // namespace ipp::net::shm_files
