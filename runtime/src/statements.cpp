#include "ipp/runtime/statements.hpp"

#include <fmt/format.h>

#include "ipp/literal.hpp"

namespace ipp::statements {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}
bool is_keyword(std::string_view w) {
  return w == "import" || w == "del" || w == "true" || w == "false" || w == "True" ||
         w == "False" || w == "None" || w == "null";
}

std::string shown(char c) {
  if (c == '\n') return "a newline";
  if (c == '\0') return "the end of the code";
  return fmt::format("'{}'", c);
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text), literals_(text) {}

  std::vector<Statement> parse() {
    std::vector<Statement> out;
    while (true) {
      skip(true);
      while (peek() == ';') {
        ++pos_;
        skip(true);
      }
      if (at_end()) break;
      out.push_back(statement());
      skip(false);
      if (at_end()) break;
      if (peek() == '\n' || peek() == ';') {
        ++pos_;
        continue;
      }
      if (peek() == '=') fail("only a name can be assigned to");
      if (peek() == ')' || peek() == ']') fail(fmt::format("unmatched {}", shown(peek())));
      fail(fmt::format("expected a newline or ';' after the statement, found {}", shown(peek())));
    }
    return out;
  }

 private:
  [[nodiscard]] bool at_end() const noexcept { return pos_ >= text_.size(); }
  [[nodiscard]] char peek() const noexcept { return at_end() ? '\0' : text_[pos_]; }

  Position where(std::size_t pos) const {
    const auto [line, column] = literals_.line_column(pos);
    return {line, column};
  }
  [[noreturn]] void fail_at(std::size_t pos, const std::string& message) const {
    const Position p = where(pos);
    throw SyntaxError(message, p.line, p.column);
  }
  [[noreturn]] void fail(const std::string& message) const { fail_at(pos_, message); }

  /// Skips blanks and comments; newlines too when `newlines` or inside brackets.
  void skip(bool newlines) {
    while (!at_end()) {
      const char c = peek();
      if (c == ' ' || c == '\t' || c == '\r' || ((newlines || depth_ > 0) && c == '\n')) {
        ++pos_;
      } else if (c == '#') {
        while (!at_end() && peek() != '\n')
          ++pos_;
      } else {
        break;
      }
    }
  }

  std::string word() {
    const std::size_t start = pos_;
    while (!at_end() && is_name_char(peek()))
      ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }

  std::vector<Statement::Name> names(std::string_view after, bool plugins) {
    std::vector<Statement::Name> out;
    while (true) {
      skip(false);
      const std::size_t at = pos_;
      if (!is_name_start(peek())) {
        fail(fmt::format("expected a {} after '{}', found {}", plugins ? "plugin name" : "name",
                         out.empty() ? after : ",", shown(peek())));
      }
      std::string w = word();
      if (is_keyword(w)) fail_at(at, fmt::format("'{}' is a keyword, not a name", w));
      if (peek() == '.') fail(fmt::format("expected a plain name, found '{}.'", w));
      out.push_back({std::move(w), where(at)});
      skip(false);
      if (peek() != ',') return out;
      ++pos_;
    }
  }

  Statement statement() {
    Statement s;
    const std::size_t start = pos_;
    s.at = where(start);
    if (is_name_start(peek())) {
      const std::string w = word();
      if (w == "import") {
        s.kind = Statement::Kind::import_plugins;
        s.names = names("import", true);
        return s;
      }
      if (w == "del") {
        s.kind = Statement::Kind::del;
        s.names = names("del", false);
        return s;
      }
      skip(false);
      if (peek() == '=' && (pos_ + 1 >= text_.size() || text_[pos_ + 1] != '=')) {
        if (is_keyword(w)) fail_at(start, fmt::format("cannot assign to the keyword '{}'", w));
        ++pos_;
        s.kind = Statement::Kind::assign;
        s.names.push_back({w, where(start)});
        skip(false);
        if (at_end() || peek() == '\n' || peek() == ';')
          fail(fmt::format("expected a value after '{} =', found {}", w, shown(peek())));
        s.expr = expr();
        return s;
      }
      pos_ = start;
    } else if (peek() == '=') {
      fail("expected a name before '='");
    }
    s.kind = Statement::Kind::expr;
    s.expr = expr();
    return s;
  }

  Expr expr() {
    skip(false);
    Expr e;
    const std::size_t start = pos_;
    e.at = where(start);
    const char c = peek();
    if (is_name_start(c)) {
      std::string w = word();
      if (w == "true" || w == "True" || w == "false" || w == "False" || w == "None" ||
          w == "null") {
        pos_ = start;
        e.value = literals().parse_value();
        pos_ = literals_.pos();
        return e;
      }
      if (is_keyword(w)) fail_at(start, fmt::format("'{}' cannot be used as a value", w));
      std::string plugin;
      if (peek() == '.') {
        ++pos_;
        if (!is_name_start(peek()))
          fail(fmt::format("expected a task name after '{}.', found {}", w, shown(peek())));
        plugin = std::move(w);
        w = word();
        if (peek() == '.') fail("a task is named plugin.task: one dot at most");
      }
      skip(false);
      if (peek() == '(') {
        e.kind = Expr::Kind::call;
        e.plugin = plugin;
        e.name = plugin.empty() ? w : plugin + "." + w;
        e.items = sequence(')');
        return e;
      }
      if (!plugin.empty())
        fail_at(start,
                fmt::format("'{}.{}' is a task: call it, as in {}.{}(...)", plugin, w, plugin, w));
      e.kind = Expr::Kind::name;
      e.name = std::move(w);
      return e;
    }
    if (c == '[') {
      e.kind = Expr::Kind::list;
      e.items = sequence(']');
      return e;
    }
    if (c == '"' || c == '\'' || is_digit(c) || c == '-' || c == '+' || c == '.') {
      e.value = literals().parse_value();
      pos_ = literals_.pos();
      return e;
    }
    if (at_end() || c == '\n' || c == ';') fail("expected a value, a name or a call");
    if (c == ')' || c == ']' || c == ',') fail(fmt::format("expected a value, found {}", shown(c)));
    fail(fmt::format("unexpected character {}", shown(c)));
  }

  /// `( expr, expr, ... )` or `[ ... ]`, the opening bracket at pos_; a trailing comma is allowed.
  std::vector<Expr> sequence(char close) {
    const std::size_t open = pos_;
    ++pos_;
    ++depth_;
    std::vector<Expr> items;
    while (true) {
      skip(true);
      if (at_end()) fail_at(open, fmt::format("'{}' is never closed", close == ')' ? '(' : '['));
      if (peek() == close) break;
      if (peek() == ',') fail(fmt::format("expected a value before ','"));
      items.push_back(expr());
      skip(true);
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == close) break;
      if (at_end()) fail_at(open, fmt::format("'{}' is never closed", close == ')' ? '(' : '['));
      fail(fmt::format("expected ',' or '{}', found {}", close, shown(peek())));
    }
    ++pos_;
    --depth_;
    return items;
  }

  LiteralParser& literals() {
    literals_ = LiteralParser(text_, pos_);
    return literals_;
  }

  std::string_view text_;
  LiteralParser literals_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::vector<Statement> parse(std::string_view code) {
  return Parser(code).parse();
}

}  // namespace ipp::statements
