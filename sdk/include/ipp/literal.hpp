#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "ipp/error.hpp"
#include "ipp/value.hpp"

namespace ipp {

/// A malformed literal or statement, with the 1-based line and column where it went wrong.
class SyntaxError : public Error {
 public:
  SyntaxError(const std::string& message, std::size_t line, std::size_t column);
  [[nodiscard]] std::size_t line() const noexcept { return line_; }
  [[nodiscard]] std::size_t column() const noexcept { return column_; }

 private:
  std::size_t line_, column_;
};

/// Reads literal values from text, the way `ippctl` arguments and `execute` statements
/// spell them:
///
///     42   -7   2.5   1e-3   true   false   None   "text"   'text'
///     [1, 2.5, "x", [true]]      lists (a trailing comma is allowed)
///     1..9   9..1   0..100:5     inclusive integer ranges, with an optional step
///
/// A range whose end is below its start counts down when no step is given. Strings take
/// the escapes \n \t \r \0 \\ \" \' and \xNN. Not thread-safe; cheap to make.
class LiteralParser {
 public:
  explicit LiteralParser(std::string_view text, std::size_t pos = 0) : text_(text), pos_(pos) {}

  /// Parses one value at the current position (after blanks). Throws SyntaxError.
  Value parse_value();
  /// Skips spaces and tabs (not newlines).
  void skip_blanks() noexcept;
  [[nodiscard]] bool at_end() const noexcept { return pos_ >= text_.size(); }
  [[nodiscard]] std::size_t pos() const noexcept { return pos_; }
  [[nodiscard]] char peek() const noexcept { return at_end() ? '\0' : text_[pos_]; }
  /// Throws SyntaxError at the current position.
  [[noreturn]] void fail(const std::string& message) const;
  /// Line and column (1-based) of a position.
  [[nodiscard]] std::pair<std::size_t, std::size_t> line_column(std::size_t pos) const noexcept;

 private:
  Value parse_number_or_range();
  Value parse_string();
  Value parse_list();
  std::int64_t parse_int_at(std::size_t begin, std::size_t end) const;

  std::string_view text_;
  std::size_t pos_;
};

/// Parses `text` as exactly one literal. Throws SyntaxError.
Value parse_literal(std::string_view text);

}  // namespace ipp
