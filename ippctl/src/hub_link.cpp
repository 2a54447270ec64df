#include "hub_link.hpp"

#include "ipp/net/address.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/message.hpp"

namespace ipp::ctl {

namespace {
net::ConnectionInfo client_file(const std::filesystem::path& profile) {
  return net::read_connection_file(profile / net::kClientFile);
}
}  // namespace

HubLink::HubLink(const std::filesystem::path& profile)
    : HubLink(client_file(profile).endpoint("registration"), client_file(profile).key,
              client_file(profile).curve) {}

HubLink::HubLink(const std::string& endpoint, const std::string& key, const net::CurveKeys& curve)
    : signer_(key, net::Signer::for_connection(curve.on())) {
  socket_.set(zmq::sockopt::linger, 0);
  net::connect(socket_, endpoint, curve);
}

std::optional<net::Header> HubLink::query(const std::string& name, const Value& info,
                                          std::chrono::milliseconds timeout, bool patient) {
  using Steady = std::chrono::steady_clock;
  auto send = [&](const std::string& what, const Value& with) {
    net::Header h;
    h.type = net::MsgType::QueryRequest;
    h.msg_id = net::new_id();
    h.task = what;
    h.info = with;
    net::send(socket_, signer_, net::make_message(h), true);
    return h.msg_id;
  };
  const std::string id = send(name, info);
  std::string probe;
  auto deadline = Steady::now() + timeout;
  auto next_probe = Steady::now() + std::chrono::seconds(1);
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  while (Steady::now() < deadline) {
    if (patient && probe.empty() && Steady::now() >= next_probe) probe = send("ids", Value());
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      if ((item.revents & ZMQ_POLLIN) == 0) continue;
      auto env = net::recv(socket_, signer_, zmq::recv_flags::dontwait);
      if (!env) continue;
      net::Header h = net::decode_header(env->parts.at(0));
      if (h.parent_id == id) return h;
      if (!probe.empty() && h.parent_id == probe) {  // the peer is alive: wait on
        probe.clear();
        deadline = Steady::now() + timeout;
        next_probe = Steady::now() + std::chrono::seconds(1);
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    } catch (const Error&) {
      // a malformed or foreign message: not our answer
    }
  }
  return std::nullopt;
}

}  // namespace ipp::ctl
