#pragma once

// Splitting a fuzzer's bytes into the pieces a target feeds its parser.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace ipp::fuzz {

/// Reads pieces off the front of the fuzzer's input: a length byte, then that many bytes.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  /// The next piece: up to 255 bytes, as long as the byte before it says (less at the end).
  std::string_view piece() {
    if (pos_ >= size_) return {};
    const std::size_t announced = data_[pos_];
    ++pos_;
    const std::size_t n = std::min(announced, size_ - pos_);
    std::string_view out(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return out;
  }
  /// Everything not read yet.
  std::string_view rest() {
    std::string_view out(reinterpret_cast<const char*>(data_ + pos_), size_ - pos_);
    pos_ = size_;
    return out;
  }
  [[nodiscard]] bool done() const { return pos_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace ipp::fuzz
