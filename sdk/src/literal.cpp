#include "ipp/literal.hpp"

#include <cerrno>
#include <charconv>
#include <cstdlib>

#include <fmt/format.h>

namespace ipp {

SyntaxError::SyntaxError(const std::string& message, std::size_t line, std::size_t column)
    : Error(ErrorCode::syntax, fmt::format("line {}, column {}: {}", line, column, message)),
      line_(line),
      column_(column) {}

std::pair<std::size_t, std::size_t> LiteralParser::line_column(std::size_t pos) const noexcept {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < pos && i < text_.size(); ++i) {
    if (text_[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

void LiteralParser::fail(const std::string& message) const {
  const auto [line, column] = line_column(pos_);
  throw SyntaxError(message, line, column);
}

void LiteralParser::skip_blanks() noexcept {
  while (!at_end() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r'))
    ++pos_;
}

namespace {
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_word(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
}  // namespace

Value LiteralParser::parse_value() {
  skip_blanks();
  if (at_end()) fail("expected a value, found the end of the input");
  const char c = peek();
  if (c == '[') return parse_list();
  if (c == '"' || c == '\'') return parse_string();
  if (is_digit(c) || c == '-' || c == '+' || c == '.') return parse_number_or_range();
  const std::size_t start = pos_;
  while (!at_end() && is_word(peek()))
    ++pos_;
  const std::string_view word = text_.substr(start, pos_ - start);
  if (word == "true" || word == "True") return Value(true);
  if (word == "false" || word == "False") return Value(false);
  if (word == "None" || word == "null") return Value();
  pos_ = start;
  if (word.empty()) fail(fmt::format("unexpected '{}'", c));
  fail(fmt::format("'{}' is not a value (strings need quotes: \"{}\")", word, word));
}

std::int64_t LiteralParser::parse_int_at(std::size_t begin, std::size_t end) const {
  std::string_view digits = text_.substr(begin, end - begin);
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec == std::errc::result_out_of_range) {
    const auto [line, column] = line_column(begin);
    throw SyntaxError(
        fmt::format("integer {} does not fit in int64", text_.substr(begin, end - begin)), line,
        column);
  }
  if (ec != std::errc() || ptr != digits.data() + digits.size()) {
    const auto [line, column] = line_column(begin);
    throw SyntaxError(fmt::format("'{}' is not an integer", text_.substr(begin, end - begin)), line,
                      column);
  }
  return v;
}

Value LiteralParser::parse_number_or_range() {
  const std::size_t start = pos_;
  auto scan_int = [&] {
    const std::size_t b = pos_;
    if (!at_end() && (peek() == '-' || peek() == '+')) ++pos_;
    while (!at_end() && is_digit(peek()))
      ++pos_;
    return b;
  };
  scan_int();
  bool is_float = false;
  // A '.' starts a fraction unless it is the first of "..".
  if (!at_end() && peek() == '.' && !(pos_ + 1 < text_.size() && text_[pos_ + 1] == '.')) {
    is_float = true;
    ++pos_;
    while (!at_end() && is_digit(peek()))
      ++pos_;
  }
  if (!at_end() && (peek() == 'e' || peek() == 'E')) {
    is_float = true;
    ++pos_;
    if (!at_end() && (peek() == '-' || peek() == '+')) ++pos_;
    if (at_end() || !is_digit(peek())) fail("expected digits in the exponent");
    while (!at_end() && is_digit(peek()))
      ++pos_;
  }
  const std::size_t end = pos_;
  if (!at_end() && is_word(peek())) fail(fmt::format("unexpected '{}' in a number", peek()));
  if (is_float) {
    const std::string s(text_.substr(start, end - start));
    char* stop = nullptr;
    errno = 0;
    const double d = std::strtod(s.c_str(), &stop);
    if (stop != s.c_str() + s.size() || s == "." || s == "-." || s == "+.") {
      pos_ = start;
      fail(fmt::format("'{}' is not a number", s));
    }
    if (errno == ERANGE && std::abs(d) > 1.0) {
      pos_ = start;
      fail(fmt::format("{} is out of range for float64", s));
    }
    return Value(d);
  }
  const std::int64_t first = parse_int_at(start, end);
  if (!(pos_ + 1 < text_.size() && text_[pos_] == '.' && text_[pos_ + 1] == '.'))
    return Value(first);

  pos_ += 2;  // ".."
  const std::size_t last_begin = pos_;
  scan_int();
  if (pos_ == last_begin || text_.substr(last_begin, pos_ - last_begin) == "-" ||
      text_.substr(last_begin, pos_ - last_begin) == "+") {
    pos_ = last_begin;
    fail("expected an integer after '..'");
  }
  const std::int64_t last = parse_int_at(last_begin, pos_);
  std::int64_t step = last >= first ? 1 : -1;
  if (!at_end() && peek() == ':') {
    ++pos_;
    const std::size_t step_begin = pos_;
    scan_int();
    if (pos_ == step_begin) fail("expected a step after ':'");
    step = parse_int_at(step_begin, pos_);
    if (step == 0) {
      pos_ = step_begin;
      fail("a range step must not be zero");
    }
  }
  if (!at_end() && (is_word(peek()) || peek() == '.'))
    fail(fmt::format("unexpected '{}' in a range", peek()));
  try {
    return Value(Range::inclusive(first, last, step));
  } catch (const ArgumentError& e) {
    pos_ = start;
    fail(e.what());
  }
}

Value LiteralParser::parse_string() {
  const char quote = peek();
  const std::size_t start = pos_;
  ++pos_;
  std::string out;
  while (true) {
    if (at_end() || peek() == '\n') {
      pos_ = start;
      fail("unterminated string");
    }
    const char c = text_[pos_++];
    if (c == quote) break;
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (at_end()) fail("unterminated escape in a string");
    const char e = text_[pos_++];
    switch (e) {
      case 'n':
        out.push_back('\n');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case '0':
        out.push_back('\0');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '"':
        out.push_back('"');
        break;
      case '\'':
        out.push_back('\'');
        break;
      case 'x': {
        unsigned value = 0;
        if (pos_ + 2 > text_.size() ||
            std::from_chars(text_.data() + pos_, text_.data() + pos_ + 2, value, 16).ptr !=
                text_.data() + pos_ + 2) {
          fail("\\x needs two hex digits");
        }
        pos_ += 2;
        out.push_back(static_cast<char>(value));
        break;
      }
      default:
        --pos_;
        fail(fmt::format("unknown escape '\\{}'", e));
    }
  }
  return Value(std::move(out));
}

Value LiteralParser::parse_list() {
  ++pos_;  // '['
  Value::List items;
  while (true) {
    skip_blanks();
    if (at_end()) fail("unterminated list: expected ']'");
    if (peek() == ']') {
      ++pos_;
      return Value(std::move(items));
    }
    items.push_back(parse_value());
    skip_blanks();
    if (!at_end() && peek() == ',') {
      ++pos_;
      continue;
    }
    if (!at_end() && peek() == ']') continue;
    if (at_end()) fail("unterminated list: expected ']'");
    fail(fmt::format("expected ',' or ']' in a list, found '{}'", peek()));
  }
}

Value parse_literal(std::string_view text) {
  LiteralParser p(text);
  Value v = p.parse_value();
  p.skip_blanks();
  if (!p.at_end()) p.fail(fmt::format("unexpected '{}' after the value", p.peek()));
  return v;
}

}  // namespace ipp
