#pragma once

// Checking a plugin file without loading it: what the controller does with a pushed file
// (it runs no plugin code), and what an engine does before it loads one.

#include <filesystem>
#include <string_view>

namespace ipp {

/// Checks a file without loading it: an ELF shared library exporting an ipp manifest.
/// Throws PluginLoadError saying what is wrong. Messages name the file `shown_as` when given
/// (the name the user knows it by, not the store's), else by its own file name.
void validate_plugin_file(const std::filesystem::path& path, std::string_view shown_as = {});

}  // namespace ipp
