#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace ipp {

/// Shared, immutable bytes: a pointer, a size, and an owner that keeps them alive.
///
/// A Buffer may point into memory it does not allocate (a received ZeroMQ frame, a
/// std::vector adopted without copying, a slice of another Buffer); copying a Buffer
/// copies the reference, never the bytes. Thread-safe to read and copy concurrently.
///
///     std::vector<double> xs(1'000'000, 1.0);
///     ipp::Buffer b = ipp::Buffer::adopt(std::move(xs));   // no copy
///     ipp::Buffer half = b.slice(0, b.size() / 2);          // no copy
class Buffer {
 public:
  /// Alignment of storage that Buffer allocates itself, enough for every scalar type.
  static constexpr std::size_t kAlignment = 16;

  Buffer() noexcept = default;
  /// Refers to `size` bytes at `data`, kept alive by `owner`.
  Buffer(std::shared_ptr<const void> owner, const std::byte* data, std::size_t size) noexcept
      : owner_(std::move(owner)), data_(data), size_(size) {}

  /// Fresh, uninitialised storage of `size` bytes aligned to kAlignment; `out` receives
  /// the writable pointer. Large requests go to the process's large allocator when it has
  /// one. Throws std::bad_alloc.
  static Buffer allocate(std::size_t size, std::byte** out);
  /// Where requests of at least `threshold` bytes go: a process whose large buffers travel to
  /// peers on its host keeps them in shared memory (ipp::net::SharedMemory), so sending them
  /// copies nothing. When it returns nullopt, or with none set, the heap serves.
  using LargeAllocator = std::optional<Buffer> (*)(std::size_t size, std::byte** out);
  static void set_large_allocator(LargeAllocator allocator, std::size_t threshold) noexcept;
  /// An aligned copy of `size` bytes at `data`.
  static Buffer copy(const void* data, std::size_t size);
  /// Takes ownership of a vector's storage without copying it.
  template <class T>
  requires std::is_trivially_copyable_v<T>
  static Buffer adopt(std::vector<T>&& v) {
    auto holder = std::make_shared<std::vector<T>>(std::move(v));
    const auto* data = reinterpret_cast<const std::byte*>(holder->data());
    const std::size_t size = holder->size() * sizeof(T);
    return Buffer(std::shared_ptr<const void>(std::move(holder)), data, size);
  }

  [[nodiscard]] const std::byte* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  [[nodiscard]] const std::shared_ptr<const void>& owner() const noexcept { return owner_; }

  /// `size` bytes from `offset`, sharing this buffer's owner. Throws std::out_of_range.
  [[nodiscard]] Buffer slice(std::size_t offset, std::size_t size) const;
  /// True when data() is a multiple of `alignment` (a power of two).
  [[nodiscard]] bool is_aligned(std::size_t alignment) const noexcept {
    return (reinterpret_cast<std::uintptr_t>(data_) & (alignment - 1)) == 0;
  }
  /// This buffer when it is aligned to `alignment`, else an aligned copy. Frames received
  /// from ZeroMQ can start at any address; this is where that is dealt with.
  [[nodiscard]] Buffer aligned(std::size_t alignment = kAlignment) const;

 private:
  std::shared_ptr<const void> owner_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace ipp
