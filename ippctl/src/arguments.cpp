#include "arguments.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "ipp/detail/identifier.hpp"
#include "ipp/literal.hpp"

namespace ipp::ctl {

namespace {

constexpr char kBracketGuard = '\x01';

}  // namespace

std::vector<std::string> cli_words(int argc, char** argv) {
  std::vector<std::string> words(argv + 1, argv + argc);
  for (auto& w : words) {
    if (!w.empty() && w[0] == '[') w.insert(0, 1, kBracketGuard);
  }
  std::reverse(words.begin(), words.end());
  return words;
}

Value argument(std::string text) {
  if (!text.empty() && text[0] == kBracketGuard) text.erase(0, 1);
  if (text.size() > 1 && text[0] == '@' && detail::is_identifier(text.substr(1)))
    return ref(text.substr(1));
  try {
    return parse_literal(text);
  } catch (const SyntaxError&) {
    const char c = text.empty() ? '\0' : text[0];
    const bool literal_start =
        std::string_view("[\"'0123456789-+.").find(c) != std::string_view::npos;
    if (!literal_start && text.find_first_of(" \t[],") == std::string::npos) return Value(text);
    throw;
  }
}

std::vector<std::string> split_ids(const std::string& list) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : list + ",") {
    if (c == ',' || c == ' ') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

const CLI::Validator kSeconds(
    [](std::string& text) -> std::string {
      double v = 0;
      try {
        std::size_t used = 0;
        v = std::stod(text, &used);
        if (used != text.size()) return "not a number of seconds: " + text;
      } catch (const std::exception&) {
        return "not a number of seconds: " + text;
      }
      if (!std::isfinite(v) || v < 0) return "needs a finite number of seconds >= 0, not " + text;
      return {};
    },
    "SECONDS");

void Targets::add_to(CLI::App* cmd, const std::string& help) {
  options_.push_back(cmd->add_option("--targets", spec_, help));
}

bool Targets::given() const {
  return std::any_of(options_.begin(), options_.end(),
                     [](const CLI::Option* o) { return o->count() > 0; });
}

std::vector<std::int64_t> Targets::ids(const Client& rc, bool* single) const {
  *single = false;
  if (spec_ == "all") return rc.ids();
  std::vector<std::int64_t> out;
  std::stringstream ss(spec_);
  std::string part;
  while (std::getline(ss, part, ',')) {
    std::size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != part.size() || id < 0) {
      throw UsageError(
          fmt::format("bad target '{}': use an engine id, ids like 0,2, or all", part));
    }
    out.push_back(id);
  }
  if (out.empty()) throw UsageError("no targets given");
  *single = out.size() == 1 && spec_.find(',') == std::string::npos;
  return out;
}

DirectView Targets::view(Client& rc) const {
  bool single = false;
  auto t = given() ? ids(rc, &single) : rc.ids();
  if (t.empty()) throw EngineError("no engines are registered");
  return single ? rc[t[0]] : rc[t];
}

}  // namespace ipp::ctl
