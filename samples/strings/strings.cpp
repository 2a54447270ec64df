// strings: text in and out. std::string_view parameters read the received buffer in place.

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ipp/plugin.hpp>

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i != 0) out += sep;
    out += parts[i];
  }
  return out;
}

std::vector<std::string> split(std::string_view s, std::string_view sep) {
  if (sep.empty()) throw std::invalid_argument("split: empty separator");
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + sep.size();
  }
  return out;
}

std::int64_t length(std::string_view s) {
  return static_cast<std::int64_t>(s.size());
}

IPP_TASK(upper, "The string in upper case (ASCII).")
IPP_TASK(join, "Joins strings with a separator.")
IPP_TASK(split, "Splits a string at every separator.")
IPP_TASK(length, "Length in bytes.")
