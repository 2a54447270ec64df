#pragma once

#include <cstdint>

namespace ipp::net {

/// Raises this process's soft limit on open descriptors to its hard limit, so that a
/// long-lived process (controller, engine, supervisor) holds as many connections and files as
/// the system lets it; returns the soft limit now in force.
std::uint64_t raise_open_files_limit();

}  // namespace ipp::net
