#pragma once

// Ctrl-C while ippctl waits for work it submitted: noted, so the command can cancel that work
// and say so, rather than ending the process and leaving the work running unseen.

#include <signal.h>

#include <stdexcept>

namespace ipp::ctl {

class Interrupt {
 public:
  /// Blocks SIGINT in the calling thread, so threads started from now on (the client's I/O
  /// threads) never take it: it can only reach the thread that waits.
  Interrupt();
  /// Puts SIGINT's handler and the thread's signal mask back as they were.
  ~Interrupt();
  Interrupt(const Interrupt&) = delete;
  Interrupt& operator=(const Interrupt&) = delete;

  /// From now on a Ctrl-C is noted (pressed()) instead of ending the process; a second one
  /// ends it as usual.
  void listen();
  /// Whether Ctrl-C was pressed since listen().
  [[nodiscard]] static bool pressed();

 private:
  struct sigaction old_action_ {};
  sigset_t old_mask_{};
  bool listening_ = false;
};

/// Thrown when a command stopped because of Ctrl-C (after saying what it cancelled).
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

}  // namespace ipp::ctl
