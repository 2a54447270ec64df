#include "ipp/net/engine_exit.hpp"

#include <sys/wait.h>

#include <csignal>
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
      case kEnginePluginLoadHung:
        return "exited: loading a plugin did not finish in time";
      default:
        return fmt::format("exited with code {}", WEXITSTATUS(status));
    }
  }
  return fmt::format("ended with status {}", status);
}

bool engine_exit_is_crash(int status) {
  if (WIFSIGNALED(status)) {
    switch (WTERMSIG(status)) {
      case SIGSEGV:
      case SIGBUS:
      case SIGILL:
      case SIGFPE:
      case SIGABRT:
      case SIGSYS:
      case SIGTRAP:
        return true;
      default:
        return false;
    }
  }
  if (!WIFEXITED(status)) return false;
  const int code = WEXITSTATUS(status);
  return code != 0 && code != kEngineLostController && code != kEngineTaskPastTimeLimit;
}

}  // namespace ipp::net
