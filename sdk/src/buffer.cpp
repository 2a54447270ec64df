#include "ipp/buffer.hpp"

#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>

namespace ipp {

namespace {
std::atomic<Buffer::LargeAllocator> large_allocator{nullptr};
std::atomic<std::size_t> large_threshold{0};
}  // namespace

void Buffer::set_large_allocator(LargeAllocator allocator, std::size_t threshold) noexcept {
  large_threshold.store(threshold);
  large_allocator.store(allocator);
}

Buffer Buffer::allocate(std::size_t size, std::byte** out) {
  if (auto large = large_allocator.load(); large != nullptr && size >= large_threshold.load()) {
    if (auto b = large(size, out)) return std::move(*b);
  }
  // Round up: aligned_alloc wants a multiple of the alignment, and zero-size requests still
  // get a distinct pointer.
  const std::size_t rounded = ((size + kAlignment - 1) / kAlignment) * kAlignment + kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (p == nullptr) throw std::bad_alloc();
  std::shared_ptr<void> owner(p, [](void* q) noexcept { std::free(q); });
  auto* data = static_cast<std::byte*>(p);
  *out = data;
  return Buffer(std::move(owner), data, size);
}

Buffer Buffer::copy(const void* data, std::size_t size) {
  std::byte* out = nullptr;
  Buffer b = allocate(size, &out);
  if (size != 0) std::memcpy(out, data, size);
  return b;
}

Buffer Buffer::slice(std::size_t offset, std::size_t size) const {
  if (offset > size_ || size > size_ - offset) {
    throw std::out_of_range("ipp::Buffer::slice: range past the end of the buffer");
  }
  return Buffer(owner_, data_ + offset, size);
}

Buffer Buffer::aligned(std::size_t alignment) const {
  if (is_aligned(alignment)) return *this;
  return copy(data_, size_);
}

}  // namespace ipp
