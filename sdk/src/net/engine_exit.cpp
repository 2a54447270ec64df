#include "ipp/net/engine_exit.hpp"

#include <sys/wait.h>

#include <cstring>

#include <fmt/format.h>

namespace ipp::net {

std::string engine_exit_reason(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = ::sigabbrev_np(sig);
    return abbrev != nullptr ? fmt::format("was killed by signal {} (SIG{})", sig, abbrev)
                             : fmt::format("was killed by signal {}", sig);
  }
  if (WIFEXITED(status)) {
    switch (WEXITSTATUS(status)) {
      case kEngineTaskCalledExit:
        return "exited: a task called exit(0)";
      case kEngineLostController:
        return "exited: its controller stopped answering";
      case kEngineTaskPastTimeLimit:
        return "exited: a task ran past its time limit and did not stop when cancelled";
      default:
        return fmt::format("exited with code {}", WEXITSTATUS(status));
    }
  }
  return fmt::format("ended with status {}", status);
}

}  // namespace ipp::net
