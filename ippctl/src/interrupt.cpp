#include "interrupt.hpp"

#include <pthread.h>

#include <csignal>

namespace ipp::ctl {

namespace {

volatile std::sig_atomic_t g_pressed = 0;

extern "C" void on_interrupt(int) {
  g_pressed = 1;
}

sigset_t sigint_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

Interrupt::Interrupt() {
  const sigset_t set = sigint_set();
  pthread_sigmask(SIG_BLOCK, &set, &old_mask_);
}

Interrupt::~Interrupt() {
  if (listening_) sigaction(SIGINT, &old_action_, nullptr);
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

void Interrupt::listen() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;  // a second Ctrl-C ends the process
  g_pressed = 0;
  sigaction(SIGINT, &action, &old_action_);
  listening_ = true;
  const sigset_t set = sigint_set();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

bool Interrupt::pressed() {
  return g_pressed != 0;
}

}  // namespace ipp::ctl
