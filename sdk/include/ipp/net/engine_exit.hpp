#pragma once

#include <string>

namespace ipp::net {

/// How an engine process ends, as its supervisor reads the exit status. The engine's own
/// reasons use codes a task is unlikely to pass to exit() or _Exit(); 0 is a stop the
/// controller (or a signal) asked for. Any other ending is a crash, and is restarted.
inline constexpr int kEngineLostController = 83;  ///< its controller stopped answering
inline constexpr int kEngineTaskCalledExit = 84;  ///< a task called exit(0)
/// A task ran past its time limit by the grace period and did not stop when cancelled: the
/// engine ends so that its supervisor starts a fresh one (a thread cannot be taken back).
inline constexpr int kEngineTaskPastTimeLimit = 85;
/// Loading a plugin did not finish within half again the controller's load time-out (an
/// initializer that hangs): the engine ends so that its supervisor starts a fresh one, which
/// the controller no longer sends that plugin.
inline constexpr int kEnginePluginLoadHung = 86;

/// What an exit status means, completing "engine 3 ...": "was killed by signal 11 (SIGSEGV)",
/// "exited with code 3", "exited: a task called exit(0)".
std::string engine_exit_reason(int status);

/// Whether an exit status is the engine's own doing, as code it ran would end it: a crash
/// signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP) or an exit the engine
/// did not choose. Not a signal sent from outside (SIGKILL, SIGTERM: a user, the OOM killer),
/// a stop asked for, a lost controller or a task past its time limit. Only such an end while
/// an engine loads a plugin counts against the plugin.
bool engine_exit_is_crash(int status);

}  // namespace ipp::net
