#include "ipp/net/poll.hpp"

namespace ipp::net {

int poll(zmq::pollitem_t* items, std::size_t n, std::chrono::milliseconds timeout) {
  try {
    return zmq::poll(items, n, timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return -1;
    throw;
  }
}

}  // namespace ipp::net
