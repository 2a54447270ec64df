#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ipp {

/// The memory this process can still have: the kernel's estimate of what is available
/// (MemAvailable), or less when the process's cgroup has a smaller limit left. nullopt when
/// neither can be read.
std::optional<std::uint64_t> available_memory();

/// "512 B", "3.0 MiB", "745.1 GiB": a size for a message.
std::string format_bytes(std::uint64_t bytes);

/// The bytes of a map's output, `n` elements of `elem` bytes of type `dtype`: checked before
/// anything is allocated. Throws ArgumentError naming the sizes when that overflows, is more
/// than `cap` (0: no cap), or is more than 90% of the memory available now.
std::uint64_t map_output_bytes(std::uint64_t n, std::uint64_t elem, const std::string& dtype,
                               std::uint64_t cap);

}  // namespace ipp
