#include "connection_guard.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <zmq.h>

#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/net/header.hpp"

namespace ipp::ctrl {

namespace {

/// Descriptors kept free for everything but connections: database and payload files, shared
/// memory, ZeroMQ's own, and the accepts that happen before a refusal takes effect.
constexpr std::uint64_t kReserve = 128;

/// "1.2.3.4:5678", "[::1]:80" or "a Unix socket", for a log line.
std::string peer_of(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "a peer";
  char host[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return fmt::format("{}:{}", host, ntohs(a->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return fmt::format("[{}]:{}", host, ntohs(a->sin6_port));
  }
  return "a Unix socket";
}

}  // namespace

std::uint64_t open_descriptors() {
  std::error_code ec;
  std::uint64_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

std::size_t ConnectionGuard::limit_for(std::uint64_t soft_limit, std::uint64_t in_use,
                                       std::size_t cap) {
  const std::uint64_t room = soft_limit > in_use + kReserve ? soft_limit - in_use - kReserve : 0;
  const std::uint64_t limit = std::max<std::uint64_t>(room, 1);
  return cap == 0 ? static_cast<std::size_t>(limit)
                  : static_cast<std::size_t>(std::min<std::uint64_t>(limit, cap));
}

ConnectionGuard::ConnectionGuard(const std::vector<Watched>& sockets, std::size_t limit)
    : limit_(limit) {
  for (const auto& w : sockets) {
    const std::string endpoint = "inproc://ipp-guard-" + net::new_id();
    if (zmq_socket_monitor(w.socket->handle(), endpoint.c_str(),
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0)
      throw zmq::error_t();
    auto m = std::unique_ptr<Monitor>(
        new Monitor{w.socket, zmq::socket_t(*w.ctx, zmq::socket_type::pair), {}});
    m->pair.set(zmq::sockopt::linger, 0);
    // No limit on the events waiting: a lost "disconnected" would count a connection forever.
    m->pair.set(zmq::sockopt::rcvhwm, 0);
    m->pair.connect(endpoint);
    monitors_.push_back(std::move(m));
  }
}

ConnectionGuard::~ConnectionGuard() {
  for (auto& m : monitors_)
    (void)zmq_socket_monitor(m->watched->handle(), nullptr, 0);
}

std::size_t ConnectionGuard::open() const {
  std::size_t n = 0;
  for (const auto& m : monitors_)
    n += m->open.size();
  return n;
}

void ConnectionGuard::turn(std::chrono::milliseconds wait) {
  std::vector<zmq::pollitem_t> items;
  for (auto& m : monitors_)
    items.push_back({m->pair.handle(), 0, ZMQ_POLLIN, 0});
  if (zmq::poll(items, wait) <= 0) return;
  for (auto& m : monitors_) {
    while (on_event(*m)) {
    }
  }
}

bool ConnectionGuard::on_event(Monitor& m) {
  // An event is two frames: 2 bytes of event and 4 of value (the descriptor), then the
  // endpoint.
  zmq::message_t head, endpoint;
  if (!m.pair.recv(head, zmq::recv_flags::dontwait)) return false;
  bool frames_left = head.more();
  while (frames_left && m.pair.recv(endpoint, zmq::recv_flags::dontwait))
    frames_left = endpoint.more();
  if (head.size() < 6) return true;
  std::uint16_t event = 0;
  std::int32_t fd = -1;
  std::memcpy(&event, head.data(), 2);
  std::memcpy(&fd, static_cast<const char*>(head.data()) + 2, 4);
  if (event == ZMQ_EVENT_DISCONNECTED) {
    m.open.erase(fd);
    return true;
  }
  if (event != ZMQ_EVENT_ACCEPTED) return true;
  if (open() < limit_) {
    m.open.insert(fd);
    return true;
  }
  // Over the limit: libzmq owns the descriptor, so it is shut down, never closed here (its
  // number cannot be reused under libzmq); libzmq sees the connection end and closes it.
  ++refused_;
  const std::string peer = peer_of(fd);
  ::shutdown(fd, SHUT_RDWR);
  if (std::uint64_t more = 0; refusals_.allow(more))
    spdlog::warn("refused a connection from {}: {} connections are open, the limit{}", peer, open(),
                 LogLimiter::more(more));
  return true;
}

void ConnectionGuard::run(const std::atomic<bool>& stopping) {
  while (!stopping.load()) {
    try {
      turn(std::chrono::milliseconds(100));
    } catch (const std::exception& e) {
      spdlog::error("connection guard: {}", e.what());
    }
  }
}

}  // namespace ipp::ctrl
