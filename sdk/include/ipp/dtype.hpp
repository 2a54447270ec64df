#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace ipp {

/// Element type of a typed array; the same names and widths as numpy's dtypes.
enum class DType : std::uint8_t {
  int8,
  int16,
  int32,
  int64,
  uint8,
  uint16,
  uint32,
  uint64,
  float32,
  float64
};

/// Bytes per element of `dtype`.
[[nodiscard]] std::size_t dtype_size(DType dtype) noexcept;
/// `"int64"`, `"float32"`, ...
[[nodiscard]] std::string_view to_string(DType dtype) noexcept;

/// The numeric types a typed array can hold.
template <class T>
concept Numeric = std::same_as<T, std::int8_t> || std::same_as<T, std::int16_t> ||
    std::same_as<T, std::int32_t> || std::same_as<T, std::int64_t> ||
    std::same_as<T, std::uint8_t> || std::same_as<T, std::uint16_t> ||
    std::same_as<T, std::uint32_t> || std::same_as<T, std::uint64_t> || std::same_as<T, float> ||
    std::same_as<T, double>;

namespace detail {
template <class T>
constexpr DType dtype_of() noexcept {
  if constexpr (std::is_same_v<T, std::int8_t>)
    return DType::int8;
  else if constexpr (std::is_same_v<T, std::int16_t>)
    return DType::int16;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return DType::int32;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return DType::int64;
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return DType::uint8;
  else if constexpr (std::is_same_v<T, std::uint16_t>)
    return DType::uint16;
  else if constexpr (std::is_same_v<T, std::uint32_t>)
    return DType::uint32;
  else if constexpr (std::is_same_v<T, std::uint64_t>)
    return DType::uint64;
  else if constexpr (std::is_same_v<T, float>)
    return DType::float32;
  else
    return DType::float64;
}
}  // namespace detail

/// The DType of a numeric C++ type: `dtype_v<double> == DType::float64`.
template <Numeric T>
inline constexpr DType dtype_v = detail::dtype_of<T>();

}  // namespace ipp
