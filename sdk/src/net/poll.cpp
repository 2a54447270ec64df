#include "ipp/net/poll.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace ipp::net {

namespace {

constexpr std::size_t kMaxLean = 8;

/// True when every item is a ZeroMQ socket waited on for input only: the lean path applies.
bool lean_items(const zmq::pollitem_t* items, std::size_t n) {
  if (n == 0 || n > kMaxLean) return false;
  for (std::size_t i = 0; i < n; ++i) {
    if (items[i].socket == nullptr || items[i].events != ZMQ_POLLIN) return false;
  }
  return true;
}

/// ZMQ_EVENTS of a socket: it takes in the commands its I/O thread sent it, so that a message
/// that arrived counts. 1 if a message can be read, 0 if not, -1 on a signal.
int readable(zmq::pollitem_t& item) {
  int events = 0;
  std::size_t size = sizeof events;
  if (zmq_getsockopt(item.socket, ZMQ_EVENTS, &events, &size) != 0) {
    if (zmq_errno() == EINTR) return -1;
    throw zmq::error_t();
  }
  item.revents = (events & ZMQ_POLLIN) != 0 ? ZMQ_POLLIN : 0;
  return item.revents != 0 ? 1 : 0;
}

}  // namespace

// zmq_poll asks every socket for ZMQ_EVENTS twice and polls its descriptors twice (once
// without waiting) even when a message is already there: on a relay's path that is a dozen
// system calls per message. This asks each socket once, waits on the sockets' descriptors
// only when none has a message, and then asks only the sockets whose descriptor woke.
int poll(zmq::pollitem_t* items, std::size_t n, std::chrono::milliseconds timeout) {
  if (!lean_items(items, n)) {
    try {
      return zmq::poll(items, n, timeout);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) return -1;
      throw;
    }
  }
  pollfd fds[kMaxLean];
  int ready = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const int r = readable(items[i]);
    if (r < 0) return -1;
    ready += r;
    zmq_fd_t fd = -1;
    std::size_t size = sizeof fd;
    if (zmq_getsockopt(items[i].socket, ZMQ_FD, &fd, &size) != 0) throw zmq::error_t();
    fds[i] = {fd, POLLIN, 0};
  }
  if (ready > 0 || timeout.count() == 0) return ready;
  // The descriptor is the socket's mailbox: it wakes for any command, not only a message.
  // Waits again after a wake-up with nothing to read, until the time is up.
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  while (true) {
    int wait_ms = -1;
    if (timeout.count() > 0) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      wait_ms = static_cast<int>(std::max<std::int64_t>(0, left));
    }
    const int rc = ::poll(fds, n, wait_ms);
    if (rc < 0) {
      if (errno == EINTR) return -1;
      throw zmq::error_t();
    }
    if (rc == 0) return 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      const int r = readable(items[i]);
      if (r < 0) return -1;
      ready += r;
    }
    if (ready > 0) return ready;
  }
}

}  // namespace ipp::net
