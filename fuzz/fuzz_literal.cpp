// The literal parser (ippctl's arguments, `set`, statements): any text is a value or a
// SyntaxError, never a crash or a hang.
#include <cstdint>
#include <string_view>

#include "ipp/error.hpp"
#include "ipp/literal.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const ipp::Value v =
        ipp::parse_literal(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)v.repr();
  } catch (const ipp::Error&) {
  }
  return 0;
}
