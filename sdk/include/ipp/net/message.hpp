#pragma once

#include <vector>

#include <zmq.hpp>

#include "ipp/codec.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"

namespace ipp::net {

/// An envelope holding `header` and, when it has one, `payload` (root, then side frames).
Envelope make_message(const Header& header, Payload payload = {});

/// The payload parts of a received message (everything after the header), sharing storage.
Payload payload_of(const Envelope& envelope);

}  // namespace ipp::net
