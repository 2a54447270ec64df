// One plugin, tasks registered from two source files.
#include <cstdint>

#include <ipp/plugin.hpp>

std::int64_t from_a() {
  return 1;
}
IPP_TASK(from_a)
