#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ipp/buffer.hpp"

namespace ipp::net {

/// Large message parts through shared memory, between the processes of a cluster that share
/// one host (and its tmpfs).
///
/// A part of kThreshold bytes or more does not travel through the socket: its bytes are in a
/// file of the cluster's directory on tmpfs (`/dev/shm/ipp-...`, mode 0700), and the message
/// carries a 32-byte reference to it. The receiver maps the file read-only and reads the part
/// in place; the sender copies nothing when the part already lives in such a file (a received
/// part sent on, an array this process allocated there), else it writes the bytes once.
///
/// Every file name is held by one owner. A file named `t-<id>` belongs to the message in
/// flight that refers to it; the receiver renames it `h-<pid>-<id>` (its own), maps it, and
/// removes the name when the last Buffer of it goes. Sending a part that lives in a file
/// links it under a new `t-` name for that message. The kernel frees the memory once no name
/// and no mapping is left. What a lost message or a dead process leaves behind, the
/// controller removes (sweep()).
///
/// A file of 4 MiB or more whose last name goes is kept for a while as `p-<size>-<id>` (up
/// to 2 GiB of them per directory), and the next large part of about its size is written
/// into it: into pages that exist, at memory speed, instead of pages allocated as they are
/// first written. A process that wrote into such a file keeps its mapping of it (trim()), so
/// writing into the same file again costs no new mapping.
///
/// Thread-safe.
class SharedMemory {
 public:
  /// Parts at least this large go through shared memory when the peer maps it.
  static constexpr std::size_t kThreshold = 256 * 1024;
  /// The size of a reference on the wire.
  static constexpr std::size_t kRefSize = 32;
  using Ref = std::array<std::byte, kRefSize>;

  /// The controller's side: creates the cluster's directory `dir` (mode 0700) and the token
  /// file peers prove they see it with. Returns the token. Throws std::system_error.
  static std::string create(const std::filesystem::path& dir);
  /// Removes the directory and everything in it (the cluster stops). Never throws.
  static void remove(const std::filesystem::path& dir) noexcept;
  /// Removes the directories under `root` that controllers of this user left when they died
  /// (their process is gone and nothing in them changed for `idle`). Returns how many.
  static std::size_t remove_abandoned(const std::filesystem::path& root,
                                      std::chrono::seconds idle) noexcept;
  /// Removes what nobody will take any more: `t-` files older than `ttl` (their message was
  /// lost), `h-` files of processes that are gone, and files kept for reuse (`p-`) unused for
  /// 30 s (or `ttl`, if shorter). Returns how many. Never throws.
  static std::size_t sweep(const std::filesystem::path& dir, std::chrono::seconds ttl) noexcept;

  /// The cluster's directory, when this process sees it: same host, same user, and the token
  /// file holds `token`; else null. Connections pass it to send() and recv(). Large buffers
  /// this process allocates from then on live in the directory (see Buffer::allocate), so
  /// that sending them copies nothing. Each directory has one instance, alive for the rest
  /// of the process (Buffers anywhere may still point into it). Each open() is a use of the
  /// directory until release().
  static const SharedMemory* open(const std::filesystem::path& dir, std::string_view token);
  /// Ends a use of `shm` begun by open() (a connection closes). Large buffers live in the
  /// directory opened last of those still used, and on the heap when none is.
  static void release(const SharedMemory* shm) noexcept;
  /// Whether this process sees the cluster's directory (as open() checks it), with no other
  /// effect: a peer that does runs on the controller's host.
  [[nodiscard]] static bool sees(const std::filesystem::path& dir, std::string_view token);
  /// Large buffers go back to the heap (tests).
  static void stop_allocating() noexcept;
  /// A process keeps its writable mappings of large files (4 MiB or more) when it is done
  /// with them, for the next time it takes the same file from the pool: writing into it then
  /// costs the copy alone, not a new mapping and its teardown (more than the copy itself).
  /// This drops those unused for `idle`, and those whose file has no name left (where the
  /// mapping alone would keep its memory). Loops call it now and then; a directory's kept
  /// mappings go when its last use is released. Thread-safe.
  static void trim(std::chrono::steady_clock::duration idle) noexcept;
  struct KeptMappings {
    std::size_t count = 0;     // mappings kept now
    std::uint64_t bytes = 0;   // their size
    std::uint64_t reused = 0;  // files written through a kept mapping, since the process began
  };
  /// What this process keeps (tests, diagnostics).
  [[nodiscard]] static KeptMappings kept_mappings();

  /// A reference for sending `part`: a new name for the file it lives in, or a new file with
  /// its bytes. nullopt when that cannot be done (the directory is full): the part then goes
  /// through the socket.
  [[nodiscard]] std::optional<Ref> export_part(const Buffer& part) const;
  /// The part `ref` names, mapped read-only, taking the file's name as this process's own.
  /// Throws ProtocolError naming what is wrong (a malformed reference, a file gone).
  [[nodiscard]] Buffer import_part(std::span<const std::byte> ref) const;
  /// Fresh writable storage of `size` bytes in a file of the directory (nullopt when the
  /// directory cannot hold it).
  [[nodiscard]] std::optional<Buffer> allocate(std::size_t size, std::byte** out) const;

  [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_; }

 private:
  explicit SharedMemory(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path dir_;
};

}  // namespace ipp::net
