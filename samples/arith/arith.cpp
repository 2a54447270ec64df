// arith: the tutorial's plugin.

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <thread>

#include <ipp/plugin.hpp>

std::int64_t mul(std::int64_t a, std::int64_t b) {
  return a * b;
}

std::int64_t add(std::int64_t a, std::int64_t b) {
  return a + b;
}

double divide(double a, double b) {
  if (b == 0.0) throw std::domain_error("division by zero");
  return a / b;
}

std::int64_t wait_here(double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return getpid();
}

IPP_TASK(mul, "Multiplies two integers.")
IPP_TASK(add, "Adds two integers.")
IPP_TASK(divide, "Divides a by b; division by zero is an error.")
IPP_TASK(wait_here, "Sleeps for `seconds` and returns the engine's process id.")
