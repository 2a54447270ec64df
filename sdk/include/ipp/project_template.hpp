#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ipp {

/// Writes a ready-to-build plugin project named `name` into `dir`: a CMakeLists.txt using
/// find_package(ipp) and ipp_add_plugin, `name`.cpp with one example task, and a README.
/// Returns the files written. Throws UsageError when `name` is not an identifier or `dir`
/// exists and is not empty; std::filesystem::filesystem_error on I/O failures.
std::vector<std::filesystem::path> write_plugin_project(const std::string& name,
                                                        const std::filesystem::path& dir);

}  // namespace ipp
