#pragma once

#include <chrono>
#include <cstddef>

#include <zmq.hpp>

namespace ipp::net {

/// zmq::poll that reports a signal instead of throwing: returns the number of items with
/// events (0 on timeout), or -1 when a signal interrupted it (callers re-check their stop
/// flag and poll again).
int poll(zmq::pollitem_t* items, std::size_t n, std::chrono::milliseconds timeout);

}  // namespace ipp::net
