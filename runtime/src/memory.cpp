#include "ipp/runtime/memory.hpp"

#include <algorithm>
#include <fstream>
#include <limits>

#include <fmt/format.h>

#include "ipp/error.hpp"

namespace ipp {

namespace {

/// Outputs smaller than this are allocated without looking at the memory available.
constexpr std::uint64_t kCheckFrom = std::uint64_t{64} << 20;

std::optional<std::uint64_t> read_number(const std::string& file) {
  std::ifstream in(file);
  std::uint64_t v = 0;
  if (in >> v) return v;
  return std::nullopt;
}

/// What the process's cgroup (v2) still allows, when it has a limit.
std::optional<std::uint64_t> cgroup_room() {
  std::ifstream self("/proc/self/cgroup");
  std::string line;
  while (std::getline(self, line)) {
    if (line.rfind("0::", 0) != 0) continue;
    const std::string dir = "/sys/fs/cgroup" + line.substr(3);
    const auto max = read_number(dir + "/memory.max");  // "max" reads as none
    const auto current = read_number(dir + "/memory.current");
    if (!max || !current) return std::nullopt;
    return *max > *current ? *max - *current : 0;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::uint64_t> available_memory() {
  std::optional<std::uint64_t> out;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib) {
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") {
      out = kib * 1024;
      break;
    }
  }
  if (const auto room = cgroup_room()) out = out ? std::min(*out, *room) : *room;
  return out;
}

std::string format_bytes(std::uint64_t bytes) {
  constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  double v = static_cast<double>(bytes) / 1024;
  std::size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f} {}", v, kUnits[unit]);
}

std::uint64_t map_output_bytes(std::uint64_t n, std::uint64_t elem, const std::string& dtype,
                               std::uint64_t cap) {
  if (elem != 0 && n > std::numeric_limits<std::uint64_t>::max() / elem) {
    throw ArgumentError(fmt::format(
        "map output of {} {} elements is more bytes than a computer can address", n, dtype));
  }
  const std::uint64_t bytes = n * elem;
  if (cap != 0 && bytes > cap) {
    throw ArgumentError(
        fmt::format("map output of {} {} elements ({}) is more than the engine's limit of {} "
                    "(ippengine --max-map-output)",
                    n, dtype, format_bytes(bytes), format_bytes(cap)));
  }
  if (bytes < kCheckFrom) return bytes;
  if (const auto available = available_memory(); available && bytes > *available / 10 * 9) {
    throw ArgumentError(
        fmt::format("map output of {} {} elements ({}) does not fit in the memory available ({})",
                    n, dtype, format_bytes(bytes), format_bytes(*available)));
  }
  return bytes;
}

}  // namespace ipp
