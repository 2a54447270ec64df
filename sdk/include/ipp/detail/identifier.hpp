#pragma once

#include <string_view>

namespace ipp::detail {

/// True for C identifiers: a letter or `_`, then letters, digits and `_`. Plugin and task
/// names must be identifiers.
constexpr bool is_identifier(std::string_view s) noexcept {
  if (s.empty()) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!alpha(s[0])) return false;
  for (char c : s.substr(1)) {
    if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
  }
  return true;
}

}  // namespace ipp::detail
