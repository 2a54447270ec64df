// ConnectionGuard over a real ROUTER socket on loopback, fed raw TCP connections.
#include "connection_guard.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

namespace ipp::ctrl {
namespace {

using namespace std::chrono_literals;

int connect_to(const std::string& endpoint) {
  const auto colon = endpoint.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(endpoint.substr(colon + 1))));
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

/// Turns the guard until `done()` or five seconds.
template <typename Done>
bool turn_until(ConnectionGuard& g, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    g.turn(10ms);
  }
  return true;
}

/// Whether the peer closed `fd` (a read sees the end, or the reset).
bool closed_by_peer(int fd) {
  timeval limit{0, 200000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  char buf[64];
  for (int i = 0; i < 25; ++i) {  // the peer's greeting may come first
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return true;
  }
  return false;
}

TEST(ConnectionGuardTest, ConnectionsOverTheLimitAreClosedAndClosingMakesRoom) {
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  ConnectionGuard guard({{&ctx, &router}}, 2);
  router.bind("tcp://127.0.0.1:*");
  const std::string at = router.get(zmq::sockopt::last_endpoint);

  const int a = connect_to(at), b = connect_to(at);
  ASSERT_TRUE(turn_until(guard, [&] { return guard.open() == 2; }));
  const int c = connect_to(at);
  ASSERT_TRUE(turn_until(guard, [&] { return guard.refused() == 1; }));
  EXPECT_EQ(guard.open(), 2u);
  EXPECT_TRUE(closed_by_peer(c)) << "the one over the limit is closed";

  ::close(a);
  ASSERT_TRUE(turn_until(guard, [&] { return guard.open() == 1; }));
  const int d = connect_to(at);
  ASSERT_TRUE(turn_until(guard, [&] { return guard.open() == 2; }));
  EXPECT_EQ(guard.refused(), 1u) << "room again after one left";
  for (int fd : {b, c, d})
    ::close(fd);
}

TEST(ConnectionGuardTest, TheLimitLeavesAReserveOfDescriptors) {
  EXPECT_EQ(ConnectionGuard::limit_for(1024, 100, 0), 1024u - 100 - 128);
  EXPECT_EQ(ConnectionGuard::limit_for(1024, 100, 50), 50u) << "a cap below the room";
  EXPECT_EQ(ConnectionGuard::limit_for(200, 150, 0), 1u) << "never none at all";
  EXPECT_GT(open_descriptors(), 2u);
}

}  // namespace
}  // namespace ipp::ctrl
