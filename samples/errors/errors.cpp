// errors: how failures come back to the caller. None of these takes the engine down.

#include <cstdint>
#include <stdexcept>
#include <string>

#include <ipp/plugin.hpp>

/// Throws std::invalid_argument with the given message.
std::int64_t fail(const std::string& message) {
  throw std::invalid_argument(message);
}

struct NotAStdException {};

/// Throws something that is not a std::exception.
void fail_oddly() {
  throw NotAStdException{};
}

/// Fails on odd inputs: in a map, the error names the element that failed.
std::int64_t only_even(std::int64_t x) {
  if (x % 2 != 0) throw std::domain_error("odd input " + std::to_string(x));
  return x;
}

/// Takes an int8: larger values are refused before the task runs.
std::int64_t small(std::int8_t x) {
  return x;
}

IPP_TASK(fail, "Always throws std::invalid_argument(message).")
IPP_TASK(fail_oddly, "Throws a type that is not a std::exception.")
IPP_TASK(only_even, "Returns x when even, throws otherwise.")
IPP_TASK(small, "Accepts only values that fit in int8.")
