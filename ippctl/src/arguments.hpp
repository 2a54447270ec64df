#pragma once

// How ippctl reads the words of its command line: values, engine targets, msg_id lists and
// numbers of seconds.

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "ipp/client.hpp"

namespace ipp::ctl {

/// The words of argv for CLI11: reversed, as CLI11 takes them, and with a word starting with
/// '[' guarded (CLI11 reads "[a, b]" as its own list syntax; argument() removes the guard).
std::vector<std::string> cli_words(int argc, char** argv);

/// A command-line argument as a value: a literal, `@name` for a name in the engine's
/// namespace (ipp::ref), or else a bare word taken as a string. Throws SyntaxError.
Value argument(std::string text);

/// "a,b, c" -> {"a", "b", "c"} (empty pieces dropped).
std::vector<std::string> split_ids(const std::string& list);

/// A number of seconds: finite and not negative ("nan", "inf" and "-3" are usage errors).
extern const CLI::Validator kSeconds;

/// The --targets option of several subcommands: "0", "0,2" or "all". Given at all, an empty
/// list is an error, not "all engines".
class Targets {
 public:
  /// Declares --targets on `cmd`.
  void add_to(CLI::App* cmd, const std::string& help = "Engines: 0, 0,2 or all (default: all)");
  /// Whether --targets was given on the command line.
  [[nodiscard]] bool given() const;
  /// The engine ids asked for; `single` says whether one id was given alone (a view on one
  /// engine, whose results are not lists). Throws UsageError for a malformed list.
  std::vector<std::int64_t> ids(const Client& rc, bool* single) const;
  /// A view on the engines asked for, or on every registered engine when none were; throws
  /// EngineError when there are none.
  DirectView view(Client& rc) const;

 private:
  std::string spec_;
  std::vector<CLI::Option*> options_;
};

}  // namespace ipp::ctl
