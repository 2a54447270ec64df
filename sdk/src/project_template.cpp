#include "ipp/project_template.hpp"

#include <fstream>

#include <fmt/format.h>

#include "ipp/detail/identifier.hpp"
#include "ipp/error.hpp"

namespace ipp {

namespace {

constexpr const char* kCMakeLists = R"(cmake_minimum_required(VERSION 3.22)
project({name} VERSION 0.1.0 LANGUAGES CXX)

# Tasks are hot loops: build optimised unless a build type is chosen (-DCMAKE_BUILD_TYPE=Debug).
if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

# Finds the ipp SDK; point CMAKE_PREFIX_PATH at its install prefix if it is not in a default place.
find_package(ipp CONFIG REQUIRED)

# Builds {name}.so in the build directory. Add more sources to SOURCES as the plugin grows.
ipp_add_plugin({name} SOURCES {name}.cpp)
)";

constexpr const char* kSource =
    R"(// Tasks of the `{name}` plugin. Each IPP_TASK line registers an ordinary C++ function;
// its signature is read from the function type.
#include <ipp/plugin.hpp>

#include <cstdint>
#include <numeric>
#include <span>

/// Multiplies two integers.
std::int64_t mul(std::int64_t a, std::int64_t b) {{ return a * b; }}

/// Adds up an array of numbers, reading them in place.
double total(std::span<const double> xs) {{ return std::accumulate(xs.begin(), xs.end(), 0.0); }}

IPP_TASK(mul, "Multiplies two integers.")
IPP_TASK(total, "Adds up an array of float64 numbers.")
)";

constexpr const char* kReadme = R"(# {name}

An ipp plugin.

Build it against an installed ipp SDK:

    cmake -S . -B build            # add -DCMAKE_PREFIX_PATH=/path/to/ipp if needed
    cmake --build build            # makes build/{name}.so

Send it to a running cluster and call its tasks:

    ippctl push build/{name}.so
    ippctl apply {name}.mul 5 6
    ippctl map mul 1..9 2..10

Tasks are plain functions registered with `IPP_TASK(fn)` or `IPP_TASK(fn, "doc")` in
`{name}.cpp`; see the `ipp/plugin.hpp` header for the parameter and result types allowed.
)";

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    throw std::filesystem::filesystem_error("cannot write", path,
                                            std::make_error_code(std::errc::io_error));
  }
}

}  // namespace

std::vector<std::filesystem::path> write_plugin_project(const std::string& name,
                                                        const std::filesystem::path& dir) {
  if (!detail::is_identifier(name)) {
    throw UsageError(fmt::format(
        "plugin name '{}' must be an identifier (letters, digits and _, not starting with a digit)",
        name));
  }
  if (std::filesystem::exists(dir) &&
      (!std::filesystem::is_directory(dir) || !std::filesystem::is_empty(dir))) {
    throw UsageError(
        fmt::format("'{}' already exists and is not an empty directory", dir.string()));
  }
  std::filesystem::create_directories(dir);
  const std::vector<std::pair<std::filesystem::path, const char*>> files = {
      {dir / "CMakeLists.txt", kCMakeLists},
      {dir / (name + ".cpp"), kSource},
      {dir / "README.md", kReadme},
  };
  std::vector<std::filesystem::path> written;
  for (const auto& [path, text] : files) {
    write_file(path, fmt::format(fmt::runtime(text), fmt::arg("name", name)));
    written.push_back(path);
  }
  return written;
}

}  // namespace ipp
