// A plugin that takes its engine down: for tests of engines that die and are restarted.
#include <csignal>
#include <cstdint>
#include <cstdlib>

#include <ipp/plugin.hpp>

/// Raises SIGSEGV: the engine process dies of it.
std::int64_t segv() {
  // Sanitizer builds handle SIGSEGV themselves (and abort); the default disposition makes the
  // death a SIGSEGV in every build.
  std::signal(SIGSEGV, SIG_DFL);
  std::raise(SIGSEGV);
  return 0;
}

/// Calls exit(code), as a plugin that ends its process the ordinary way would.
std::int64_t call_exit(std::int64_t code) {
  std::exit(static_cast<int>(code));
}

/// Ends the engine process at once with `code`, as a plugin calling _Exit() would.
std::int64_t exit_now(std::int64_t code) {
  std::_Exit(static_cast<int>(code));
}

IPP_TASK(segv, "Kills its engine with SIGSEGV.")
IPP_TASK(exit_now, "Ends its engine process with the given exit code.")
IPP_TASK(call_exit, "Calls exit() with the given code.")
