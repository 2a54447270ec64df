// Registers `one` again, from another source file: the plugin must be refused.
#include <cstdint>

#include <ipp/plugin.hpp>

namespace other {
std::int64_t one() {
  return 2;
}
}  // namespace other
IPP_TASK_AS(one, other::one, "")
