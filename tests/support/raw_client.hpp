#pragma once

// A minimal client speaking the wire protocol directly, for cluster tests.

#include <chrono>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "ipp/codec.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/message.hpp"

namespace ipp::test {

struct Reply {
  net::Header header;
  Value value;
};

class RawClient {
 public:
  explicit RawClient(const std::filesystem::path& profile)
      : info_(net::read_connection_file(profile / net::kClientFile)), signer_(info_.key) {
    for (auto* s : {&reg_, &direct_, &balanced_}) {
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::rcvtimeo, 30000);
    }
    reg_.connect(info_.endpoint("registration"));
    direct_.connect(info_.endpoint("direct"));
    balanced_.connect(info_.endpoint("balanced"));
  }

  const net::ConnectionInfo& info() const { return info_; }

  Reply query(const std::string& what, Value info = {}) {
    net::Header h;
    h.type = net::MsgType::QueryRequest;
    h.msg_id = net::new_id();
    h.task = what;
    h.info = std::move(info);
    Reply r = call(reg_, h, {});
    r.value = r.header.info;
    return r;
  }

  Reply push(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
    net::Header h;
    h.type = net::MsgType::PushRequest;
    h.msg_id = net::new_id();
    h.task = file.stem().string();
    Reply r = call(reg_, h, encode(Value(Bytes{Buffer::adopt(std::move(bytes))})));
    r.value = r.header.info;
    return r;
  }

  /// target < 0: load-balanced.
  Reply apply(std::int64_t target, const std::string& task, const Value::List& args,
              bool map = false) {
    net::Header h;
    h.type = map ? net::MsgType::MapRequest : net::MsgType::ApplyRequest;
    h.msg_id = net::new_id();
    h.task = task;
    h.target = target;
    h.submitted = net::now_us();
    return call(target < 0 ? balanced_ : direct_, h, encode(Value(args)));
  }

  /// Sends without waiting; collect with receive().
  std::string send_apply(std::int64_t target, const std::string& task, const Value::List& args) {
    net::Header h;
    h.type = net::MsgType::ApplyRequest;
    h.msg_id = net::new_id();
    h.task = task;
    h.target = target;
    send(target < 0 ? balanced_ : direct_, h, encode(Value(args)));
    return h.msg_id;
  }
  Reply receive(bool balanced) { return read(balanced ? balanced_ : direct_); }
  /// Sends frames as they are (after the DEALER's own routing), for malformed messages.
  void send_frames(bool balanced, std::vector<zmq::message_t> frames) {
    zmq::socket_t& s = balanced ? balanced_ : direct_;
    for (std::size_t i = 0; i < frames.size(); ++i)
      s.send(frames[i], i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  [[nodiscard]] const net::Signer& signer() const { return signer_; }
  /// The frames of an apply request to `target` as this client sends it, signed, without a
  /// route: for tests that send them again, or change them on the way.
  std::vector<zmq::message_t> signed_apply(std::int64_t target, const std::string& task,
                                           const Value::List& args, std::string& msg_id) {
    net::Header h;
    h.type = net::MsgType::ApplyRequest;
    h.msg_id = msg_id = net::new_id();
    h.task = task;
    h.target = target;
    h.submitted = net::now_us();
    zmq::socket_t sink(ctx_, zmq::socket_type::router);
    zmq::socket_t from(ctx_, zmq::socket_type::dealer);
    sink.bind("inproc://raw-" + h.msg_id);
    from.connect("inproc://raw-" + h.msg_id);
    net::send(from, signer_, net::make_message(h, encode(Value(args))));
    std::vector<zmq::message_t> frames;
    (void)zmq::recv_multipart(sink, std::back_inserter(frames));
    frames.erase(frames.begin());  // the sink's route
    return frames;
  }

 private:
  void send(zmq::socket_t& s, const net::Header& h, Payload payload) {
    net::send(s, signer_, net::make_message(h, std::move(payload)));
  }
  Reply read(zmq::socket_t& s) {
    auto env = net::recv(s, signer_);
    if (!env) throw std::runtime_error("no reply within the timeout");
    Reply r;
    r.header = net::decode_header(env->parts.at(0));
    if (env->parts.size() > 1) r.value = decode(net::payload_of(*env));
    return r;
  }
  Reply call(zmq::socket_t& s, const net::Header& h, Payload payload) {
    send(s, h, std::move(payload));
    return read(s);
  }

  net::ConnectionInfo info_;
  net::Signer signer_;
  zmq::context_t ctx_;
  zmq::socket_t reg_{ctx_, zmq::socket_type::dealer};
  zmq::socket_t direct_{ctx_, zmq::socket_type::dealer};
  zmq::socket_t balanced_{ctx_, zmq::socket_type::dealer};
};

}  // namespace ipp::test
