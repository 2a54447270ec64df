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
#include "shm_files.hpp"

namespace ipp::net {

namespace {

using namespace shm_files;

constexpr const char* kTokenFile = "token";
constexpr const char* kOwnerFile = "owner";  // the pid of the controller that made it

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
  if (auto w = create_writable(path, size, true)) return buffer(*w);
  return std::nullopt;
}

void SharedMemory::trim(std::chrono::steady_clock::duration idle) noexcept {
  MappingCache::instance().trim(idle);
}

SharedMemory::KeptMappings SharedMemory::kept_mappings() {
  return MappingCache::instance().usage();
}

}  // namespace ipp::net
