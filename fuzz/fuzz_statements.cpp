// The `execute` statements' parser: any text is statements or a SyntaxError with its place.
#include <cstdint>
#include <string_view>

#include "ipp/error.hpp"
#include "ipp/runtime/statements.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)ipp::statements::parse(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const ipp::Error&) {
  }
  return 0;
}
