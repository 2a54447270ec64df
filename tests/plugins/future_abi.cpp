// Built with IPP_PLUGIN_ABI_VERSION 999: the runtime must refuse it.
#include <cstdint>

#include <ipp/plugin.hpp>

std::int64_t never_called() {
  return 0;
}
IPP_TASK(never_called)
