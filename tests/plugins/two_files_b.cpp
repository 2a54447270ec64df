#include <cstdint>

#include <ipp/plugin.hpp>

std::int64_t from_b() {
  return 2;
}
IPP_TASK(from_b, "Registered in the second source file.")
