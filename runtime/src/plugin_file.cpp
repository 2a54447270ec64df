#include "ipp/runtime/plugin_file.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <boost/dll/library_info.hpp>

#include "ipp/abi.h"
#include "ipp/error.hpp"

namespace ipp {

namespace {

bool has_elf_magic(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::array<char, 4> magic{};
  in.read(magic.data(), magic.size());
  return in.gcount() == 4 && magic == std::array<char, 4>{'\x7f', 'E', 'L', 'F'};
}

}  // namespace

void validate_plugin_file(const std::filesystem::path& path, std::string_view shown_as) {
  const std::string name = shown_as.empty() ? path.filename().string() : std::string(shown_as);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw PluginLoadError(fmt::format("'{}' is not a file", name));
  }
  if (!has_elf_magic(path)) {
    throw PluginLoadError(fmt::format("'{}' is not a shared library (no ELF header)", name));
  }
  std::vector<std::string> symbols;
  try {
    boost::dll::library_info info(path.string());
    symbols = info.symbols("boostdll");
  } catch (const std::exception& e) {
    throw PluginLoadError(fmt::format("'{}' is not a readable shared library: {}", name, e.what()));
  }
  if (std::find(symbols.begin(), symbols.end(), IPP_MANIFEST_SYMBOL) == symbols.end()) {
    throw PluginLoadError(
        fmt::format("'{}' is a shared library but not an ipp plugin: it exports no ipp manifest "
                    "(build it with ipp_add_plugin and register tasks with IPP_TASK)",
                    name));
  }
}

}  // namespace ipp
