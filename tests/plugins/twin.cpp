// Defines `mul` like the arith sample, so a bare `mul` becomes ambiguous.
#include <cstdint>

#include <ipp/plugin.hpp>

std::int64_t mul(std::int64_t a, std::int64_t b) {
  return -(a * b);
}
IPP_TASK(mul)
