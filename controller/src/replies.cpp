#include "replies.hpp"

#include "ipp/net/message.hpp"

namespace ipp::ctrl {

net::Header reply_header(net::MsgType type, std::string parent_id) {
  net::Header r;
  r.type = type;
  r.msg_id = net::new_id();
  r.parent_id = std::move(parent_id);
  return r;
}

net::Envelope task_error_reply(std::string parent_id, ErrorRecord error) {
  net::Header r = reply_header(net::MsgType::TaskReply, std::move(parent_id));
  r.engine = error.engine;
  r.task = error.task;
  r.completed = net::now_us();
  r.error = std::move(error);
  return net::make_message(r);
}

net::Envelope stop_message(std::vector<zmq::message_t> route) {
  net::Header stop;
  stop.type = net::MsgType::Stop;
  stop.msg_id = net::new_id();
  net::Envelope out = net::make_message(stop);
  out.route = std::move(route);
  return out;
}

}  // namespace ipp::ctrl
