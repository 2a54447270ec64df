#include <cstdint>

#include <ipp/plugin.hpp>

std::int64_t one() {
  return 1;
}
IPP_TASK(one)
