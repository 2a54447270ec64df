#include "ipp/net/shm.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>
#include <sodium.h>

#include "ipp/error.hpp"

namespace ipp::net {

namespace {

constexpr const char* kTokenFile = "token";
constexpr const char* kOwnerFile = "owner";  // the pid of the controller that made it

// Files this large are kept when their last user lets go (`p-<size>-<id>`), for the next
// large part of about that size: writing into pages that exist runs at memory speed, while a
// fresh file's pages are allocated one by one as they are first written (half the speed or
// less, and much less for memory the machine has not used yet). At most kPoolLimit bytes per
// directory are kept; sweep() removes what waited longer than kPoolIdle.
constexpr std::size_t kPoolMin = std::size_t{4} << 20;
constexpr std::uint64_t kPoolLimit = std::uint64_t{2} << 30;
constexpr auto kPoolIdle = std::chrono::seconds(30);

/// The size a pooled file's name says, or 0 for other names.
std::uint64_t pooled_size(const std::string& name) {
  if (name.rfind("p-", 0) != 0) return 0;
  return std::strtoull(name.c_str() + 2, nullptr, 10);
}

/// Puts the file at `path` (this process's only name for it) in the pool of its directory;
/// false when it does not belong there (small, shared, or the pool is full).
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

// Parts this large are copied into shared memory by several threads.
constexpr std::size_t kParallelFrom = std::size_t{64} << 20;

/// Copies `n` bytes (none when `from` is null) into a writable mapping of shared memory; with
/// `populate`, first makes its pages (a new file's): false when they cannot be had (the tmpfs
/// is full, or a kernel older than 5.14), where a write through the mapping would kill the
/// process with SIGBUS instead. One thread copies at well under the memory's speed (12 GB/s
/// here against 19 GB/s for two, and for pages the machine hands out for the first time 0.4
/// to 0.6 GB/s against 0.8 to 1.9), so parts of kParallelFrom or more are copied in slices of
/// at least 32 MiB by up to four threads, the caller's among them.
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

/// Takes a pooled file of `dir` that holds `size` bytes (and not more than twice that) under
/// the new name `path`; false when there is none. Files this process keeps a mapping of come
/// first, then the smallest.
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

/// Makes the new file `path` of `size` bytes and maps it writable, its pages not made yet.
std::optional<Writable> create_writable(const std::string& path, std::size_t size) {
  Writable w;
  w.fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (w.fd < 0) return std::nullopt;
  void* base = MAP_FAILED;
  if (::ftruncate(w.fd, static_cast<off_t>(size)) == 0 && ::fstat(w.fd, &w.st) == 0)
    base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, w.fd, 0);
  if (base == MAP_FAILED) {
    ::close(w.fd);
    ::unlink(path.c_str());
    return std::nullopt;
  }
  w.base = static_cast<std::byte*>(base);
  w.mapped = size;
  return w;
}

/// Undoes create_writable(): the mapping, the descriptor and the file go.
void discard(const std::string& path, const Writable& w) {
  ::munmap(w.base, w.mapped);
  ::close(w.fd);
  ::unlink(path.c_str());
}

/// Ends this process's use of a writable mapping of a file of `shm`: large ones (with the
/// file open) are kept for the next time the file comes back from the pool, others unmapped.
void done_writing(const SharedMemory* shm, const Writable& w) {
  if (w.mapped >= kPoolMin && w.fd >= 0) {
    MappingCache::instance().put({shm, w.st.st_dev, w.st.st_ino, w.fd, w.base, w.mapped, {}});
    return;
  }
  ::munmap(w.base, w.mapped);
  if (w.fd >= 0) ::close(w.fd);
}

/// One mapped file of the directory, and the name this process holds for it.
struct Segment {
  std::string path;
  std::byte* base = nullptr;
  std::size_t size = 0;
  // Writable segments (allocated here) only: the directory, and the mapping (the file is
  // not kept open meanwhile: a process may hold many such buffers).
  const SharedMemory* shm = nullptr;
  std::optional<Writable> writable;
  ~Segment();
};

// The segments alive in this process, to tell a Buffer that lives in one from others.
std::mutex registry_mutex;
std::unordered_set<const void*>& registry() {
  static auto* set = new std::unordered_set<const void*>();  // outlives static destructors
  return *set;
}

Segment::~Segment() {
  {
    std::lock_guard lock(registry_mutex);
    registry().erase(this);
  }
  if (writable) {
    // Unlinked or pooled, the file may come back to this process: its mapping is kept, with
    // the file open to see when it has no name left.
    if (writable->mapped >= kPoolMin) writable->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (!give_to_pool(path)) ::unlink(path.c_str());
    done_writing(shm, *writable);
    return;
  }
  if (base != nullptr) ::munmap(base, size);
  if (!path.empty() && !give_to_pool(path)) ::unlink(path.c_str());
}

std::shared_ptr<Segment> keep(std::string path, void* base, std::size_t size,
                              const SharedMemory* shm = nullptr,
                              std::optional<Writable> writable = std::nullopt) {
  auto seg = std::make_shared<Segment>();
  seg->path = std::move(path);
  seg->base = static_cast<std::byte*>(base);
  seg->size = size;
  seg->shm = shm;
  seg->writable = writable;
  std::lock_guard lock(registry_mutex);
  registry().insert(seg.get());
  return seg;
}

const Segment* segment_of(const Buffer& b) {
  const void* owner = b.owner().get();
  std::lock_guard lock(registry_mutex);
  return registry().count(owner) != 0 ? static_cast<const Segment*>(owner) : nullptr;
}

struct Id {
  unsigned char bytes[16];
  [[nodiscard]] std::string hex() const {
    char out[33];
    sodium_bin2hex(out, sizeof out, bytes, sizeof bytes);
    return out;
  }
};

Id fresh_id() {
  Id id{};
  randombytes_buf(id.bytes, sizeof id.bytes);
  return id;
}

void put64(std::byte* at, std::uint64_t v) {
  for (int i = 0; i < 8; ++i, v >>= 8)
    at[i] = static_cast<std::byte>(v & 0xff);
}
std::uint64_t get64(const std::byte* at) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<std::uint64_t>(at[i]);
  return v;
}

SharedMemory::Ref make_ref(const Id& id, std::uint64_t offset, std::uint64_t length) {
  SharedMemory::Ref ref{};
  std::memcpy(ref.data(), id.bytes, 16);
  put64(ref.data() + 16, offset);
  put64(ref.data() + 24, length);
  return ref;
}

/// Writes all of `bytes` to a new file `path`; false (and no file) when it cannot.
bool write_file(const std::string& path, std::span<const std::byte> bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      ::unlink(path.c_str());
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return true;
}

std::atomic<const SharedMemory*> allocating{nullptr};  // where large buffers go
std::mutex open_mutex;

/// A directory this process opened, and how many of its connections use it now.
struct Opened {
  std::filesystem::path dir;
  const SharedMemory* shm = nullptr;
  int users = 0;
};
/// Oldest first; never freed: Buffers anywhere in the process may point into a directory's
/// segments, whose instance must outlive them.
std::vector<Opened>& opened() {
  static auto* list = new std::vector<Opened>();
  return *list;
}

std::optional<Buffer> allocate_shared(std::size_t size, std::byte** out) {
  const SharedMemory* shm = allocating.load(std::memory_order_acquire);
  if (shm == nullptr) return std::nullopt;
  return shm->allocate(size, out);
}

/// Large buffers go to the directory opened last of those still in use (with open_mutex
/// held): when a client goes, the one before it gets them again, not the heap.
void choose_allocator() {
  const SharedMemory* pick = nullptr;
  const auto& list = opened();
  for (auto it = list.rbegin(); it != list.rend() && pick == nullptr; ++it) {
    if (it->users > 0) pick = it->shm;
  }
  allocating.store(pick, std::memory_order_release);
  if (pick != nullptr)
    Buffer::set_large_allocator(&allocate_shared, SharedMemory::kThreshold);
  else
    Buffer::set_large_allocator(nullptr, 0);
}

}  // namespace

std::string SharedMemory::create(const std::filesystem::path& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::system_error(errno, std::generic_category(), "cannot create " + dir.string());
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
    throw std::system_error(std::make_error_code(std::errc::permission_denied),
                            dir.string() + " is not a directory of this user");
  }
  ::chmod(dir.c_str(), 0700);  // this user's alone, even when it was there before
  std::string token;
  std::ifstream in(dir / kTokenFile);
  std::getline(in, token);
  if (token.empty()) {
    Id id = fresh_id();
    token = id.hex();
    const std::string tmp = (dir / ".token.tmp").string();
    if (!write_file(tmp, std::as_bytes(std::span(token))) ||
        ::rename(tmp.c_str(), (dir / kTokenFile).c_str()) != 0) {
      throw std::system_error(errno, std::generic_category(),
                              "cannot write the token in " + dir.string());
    }
  }
  const std::string owner = std::to_string(::getpid());
  const std::string tmp = (dir / ".owner.tmp").string();
  ::unlink(tmp.c_str());
  if (write_file(tmp, std::as_bytes(std::span(owner))))
    (void)::rename(tmp.c_str(), (dir / kOwnerFile).c_str());
  return token;
}

void SharedMemory::remove(const std::filesystem::path& dir) noexcept {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

std::size_t SharedMemory::remove_abandoned(const std::filesystem::path& root,
                                           std::chrono::seconds idle) noexcept {
  std::size_t removed = 0;
  std::error_code ec;
  const auto now = std::chrono::system_clock::now();
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    if (entry.path().filename().string().rfind("ipp-", 0) != 0) continue;
    struct stat st {};
    if (::stat(entry.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid())
      continue;
    long pid = 0;
    std::ifstream(entry.path() / kOwnerFile) >> pid;
    if (pid <= 0 || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    if (now - std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec) < idle) continue;
    remove(entry.path());
    ++removed;
  }
  return removed;
}

namespace {

/// Whether process `pid` is gone for good: no such process, or one that exited and waits to be
/// reaped (a zombie maps nothing and never will again).
bool process_gone(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

}  // namespace

std::size_t SharedMemory::sweep(const std::filesystem::path& dir,
                                std::chrono::seconds ttl) noexcept {
  std::size_t removed = 0;
  std::error_code ec;
  const auto now = std::chrono::system_clock::now();
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    bool gone = false;
    if (name.rfind("t-", 0) == 0) {
      struct stat st {};
      if (::stat(entry.path().c_str(), &st) != 0) continue;
      // ctime: when the name was last made (a link or rename counts), not the data's age.
      const auto changed = std::chrono::system_clock::from_time_t(st.st_ctim.tv_sec);
      gone = now - changed > ttl;
    } else if (name.rfind("h-", 0) == 0) {
      gone = process_gone(static_cast<pid_t>(std::strtol(name.c_str() + 2, nullptr, 10)));
    } else if (name.rfind("p-", 0) == 0) {
      struct stat st {};
      if (::stat(entry.path().c_str(), &st) != 0) continue;
      gone = now - std::chrono::system_clock::from_time_t(st.st_ctim.tv_sec) >
             std::min<std::chrono::seconds>(ttl, kPoolIdle);
    }
    if (gone && ::unlink(entry.path().c_str()) == 0) ++removed;
  }
  return removed;
}

bool SharedMemory::sees(const std::filesystem::path& dir, std::string_view token) {
  if (dir.empty() || token.empty()) return false;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid())
    return false;
  std::string seen;
  std::ifstream in(dir / kTokenFile);
  return std::getline(in, seen) && seen == token;
}

const SharedMemory* SharedMemory::open(const std::filesystem::path& dir, std::string_view token) {
  if (!sees(dir, token)) return nullptr;
  std::lock_guard lock(open_mutex);
  auto& list = opened();
  auto it = std::find_if(list.begin(), list.end(), [&](const Opened& o) { return o.dir == dir; });
  Opened entry = it != list.end() ? *it : Opened{dir, new SharedMemory(dir), 0};
  if (it != list.end()) list.erase(it);
  ++entry.users;
  list.push_back(entry);  // the latest opened allocates
  choose_allocator();
  return entry.shm;
}

void SharedMemory::release(const SharedMemory* shm) noexcept {
  if (shm == nullptr) return;
  bool unused = false;
  {
    std::lock_guard lock(open_mutex);
    for (auto& o : opened()) {
      if (o.shm == shm && o.users > 0) unused = --o.users == 0;
    }
    choose_allocator();
  }
  // Its cluster may be gone, and these mappings the only thing left of its files.
  if (unused) MappingCache::instance().trim(std::chrono::steady_clock::duration::max(), shm);
}

void SharedMemory::stop_allocating() noexcept {
  Buffer::set_large_allocator(nullptr, 0);
  allocating.store(nullptr, std::memory_order_release);
}

std::optional<SharedMemory::Ref> SharedMemory::export_part(const Buffer& part) const {
  const Id id = fresh_id();
  const std::string path = (dir_ / ("t-" + id.hex())).string();
  if (const Segment* seg = segment_of(part); seg != nullptr) {
    if (::link(seg->path.c_str(), path.c_str()) == 0) {
      return make_ref(id, static_cast<std::uint64_t>(part.data() - seg->base), part.size());
    }
  }
  if (take_from_pool(dir_, part.size(), path)) {
    if (auto w = open_writable(path, part.size())) {
      (void)copy_in(w->base, part.data(), part.size(), false);  // its pages exist
      done_writing(this, *w);
      return make_ref(id, 0, part.size());
    }
    ::unlink(path.c_str());
  }
  // A new file: a large part through a mapping, by several threads (kept for the next time
  // the file comes back); else, or when that fails, written by this thread.
  if (part.size() >= kParallelFrom) {
    if (auto w = create_writable(path, part.size())) {
      if (copy_in(w->base, part.data(), part.size(), true)) {
        done_writing(this, *w);
        return make_ref(id, 0, part.size());
      }
      discard(path, *w);
    }
  }
  if (!write_file(path, part.bytes())) return std::nullopt;
  return make_ref(id, 0, part.size());
}

Buffer SharedMemory::import_part(std::span<const std::byte> ref) const {
  if (ref.size() != kRefSize) {
    throw ProtocolError(
        fmt::format("a shared-memory reference of {} bytes (expected {})", ref.size(), kRefSize));
  }
  Id id{};
  std::memcpy(id.bytes, ref.data(), 16);
  const std::uint64_t offset = get64(ref.data() + 16);
  const std::uint64_t length = get64(ref.data() + 24);
  const std::string hex = id.hex();
  const std::string transit = (dir_ / ("t-" + hex)).string();
  const std::string own = (dir_ / fmt::format("h-{}-{}", ::getpid(), hex)).string();
  if (::rename(transit.c_str(), own.c_str()) != 0) {
    throw ProtocolError(
        fmt::format("shared-memory part {} is not there ({}): it was taken, or it "
                    "waited longer than the controller keeps parts in flight",
                    transit, std::strerror(errno)));
  }
  const int fd = ::open(own.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || offset > static_cast<std::uint64_t>(st.st_size) ||
      length > static_cast<std::uint64_t>(st.st_size) - offset || length == 0) {
    const int saved = errno;
    if (fd >= 0) ::close(fd);
    ::unlink(own.c_str());
    throw ProtocolError(fmt::format("shared-memory part {} does not hold bytes {}..{} ({})", own,
                                    offset, offset + length, std::strerror(saved)));
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* base = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (base == MAP_FAILED) {
    const int saved = errno;
    ::unlink(own.c_str());
    throw ProtocolError(
        fmt::format("cannot map shared-memory part {}: {}", own, std::strerror(saved)));
  }
  auto seg = keep(own, base, size);
  const auto* data = seg->base + offset;
  return Buffer(std::shared_ptr<const void>(std::move(seg)), data,
                static_cast<std::size_t>(length));
}

std::optional<Buffer> SharedMemory::allocate(std::size_t size, std::byte** out) const {
  if (size == 0) return std::nullopt;
  const Id id = fresh_id();
  const std::string path = (dir_ / fmt::format("h-{}-{}", ::getpid(), id.hex())).string();
  // The buffer of a writable mapping of `path`; the file is not kept open meanwhile.
  auto buffer = [&](Writable w) {
    ::close(w.fd);
    w.fd = -1;
    auto seg = keep(path, w.base, size, this, w);
    *out = seg->base;
    const auto* data = seg->base;
    return Buffer(std::shared_ptr<const void>(std::move(seg)), data, size);
  };
  if (take_from_pool(dir_, size, path)) {
    if (auto w = open_writable(path, size)) return buffer(*w);
    ::unlink(path.c_str());
  }
  // A new file, its pages made now: a full tmpfs says so here, not with a SIGBUS at the first
  // write. Large ones by several threads.
  if (size >= kParallelFrom) {
    if (auto w = create_writable(path, size)) {
      if (copy_in(w->base, nullptr, size, true)) return buffer(*w);
      discard(path, *w);
    }
  }
  Writable w;
  w.fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (w.fd < 0) return std::nullopt;
  int rc = 0;
  do {
    rc = ::posix_fallocate(w.fd, 0, static_cast<off_t>(size));
  } while (rc == EINTR);
  void* base = rc == 0 && ::fstat(w.fd, &w.st) == 0 ? ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                                                             MAP_SHARED | MAP_POPULATE, w.fd, 0)
                                                    : MAP_FAILED;
  if (base == MAP_FAILED) {
    ::close(w.fd);
    ::unlink(path.c_str());
    return std::nullopt;
  }
  w.base = static_cast<std::byte*>(base);
  w.mapped = size;
  return buffer(w);
}

void SharedMemory::trim(std::chrono::steady_clock::duration idle) noexcept {
  MappingCache::instance().trim(idle);
}

SharedMemory::KeptMappings SharedMemory::kept_mappings() {
  return MappingCache::instance().usage();
}

}  // namespace ipp::net
