#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipp/buffer.hpp"

namespace ipp::hub {

/// The whole of `path`; nullopt when there is no such file.
std::optional<std::string> read_file(const std::filesystem::path& path);
/// Writes `blob` to `path` (mode 0600, replacing it). Throws Error naming the file.
void write_file(const std::filesystem::path& path, std::string_view blob);
/// Writes to `path` what pack_parts() makes of `parts`, without making it in memory first.
/// Throws Error naming the file.
void write_file(const std::filesystem::path& path, const std::vector<Buffer>& parts);

}  // namespace ipp::hub
