#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ipp/value.hpp"

namespace ipp::statements {

/// Where something is in the code, 1-based.
struct Position {
  std::size_t line = 1;
  std::size_t column = 1;
};

/// An expression: a literal, a name from the namespace, a list of expressions, or a call.
struct Expr {
  enum class Kind { literal, name, list, call };
  Kind kind = Kind::literal;
  Value value;              ///< literal
  std::string name;         ///< name; call: the task as written (`mul`, `arith.mul`)
  std::string plugin;       ///< call: the qualifier of `plugin.task`, empty for a bare task
  std::vector<Expr> items;  ///< list items, call arguments
  Position at;
};

/// One statement of `execute`'s language.
struct Statement {
  enum class Kind { import_plugins, assign, del, expr };
  struct Name {
    std::string text;
    Position at;
  };
  Kind kind = Kind::expr;
  std::vector<Name> names;  ///< import, del: the names; assign: the target
  Expr expr;                ///< assign, expr
  Position at;
};

/// Parses a block of statements:
///
///     import sysinfo            # binds a pushed plugin by name
///     a = sysinfo.getpid()      # calls a task (qualified, or bare when unique)
///     n = 4; xs = [1, 2, a]     # literals (see ipp::LiteralParser), lists, names
///     b = mul(a, n)             # arguments are expressions: literals, names, calls
///     del xs, n
///
/// Statements end at a newline or `;`; `#` starts a comment; inside brackets and parentheses
/// newlines are blanks. Throws ipp::SyntaxError with the line and column of the first error.
std::vector<Statement> parse(std::string_view code);

}  // namespace ipp::statements
