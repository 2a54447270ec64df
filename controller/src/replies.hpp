#pragma once

#include <string>
#include <vector>

#include <zmq.hpp>

#include "ipp/error.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"

namespace ipp::ctrl {

/// The header of a reply of `type` to the request `parent_id`, with a fresh msg_id.
[[nodiscard]] net::Header reply_header(net::MsgType type, std::string parent_id);

/// A failed TaskReply to the request `parent_id`: `error` with its engine and task in the
/// header too, completed now.
[[nodiscard]] net::Envelope task_error_reply(std::string parent_id, ErrorRecord error);

/// A Stop for the engine at `route`: it exits (a removed engine, or the cluster shutting down).
[[nodiscard]] net::Envelope stop_message(std::vector<zmq::message_t> route);

}  // namespace ipp::ctrl
