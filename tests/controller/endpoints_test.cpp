// Where a controller listens: fresh keys and ports, shared memory and Unix sockets, connection
// files written and read back, restores on the same ports, and the errors of a bad restore.

#include "endpoints.hpp"

#include <gtest/gtest.h>

#include <set>

#include "ipp/error.hpp"
#include "ipp/net/address.hpp"
#include "ipp/net/signer.hpp"
#include "support/paths.hpp"

namespace ipp::ctrl {
namespace {

struct Sockets {
  zmq::context_t ctx;
  zmq::socket_t registration{ctx, zmq::socket_type::router};
  zmq::socket_t heartbeat{ctx, zmq::socket_type::router};
  zmq::socket_t client_direct{ctx, zmq::socket_type::router};
  zmq::socket_t engine_direct{ctx, zmq::socket_type::router};
  zmq::socket_t client_balanced{ctx, zmq::socket_type::router};
  zmq::socket_t engine_balanced{ctx, zmq::socket_type::router};
  ControllerSockets all{registration,  heartbeat,       client_direct,
                        engine_direct, client_balanced, engine_balanced};
};

struct EndpointsTest : ::testing::Test {
  test::TempDir profile, shm_root;
  ControllerOptions options() {
    ControllerOptions o;
    o.profile_dir = profile.path();
    o.shm_root = shm_root.path();
    return o;
  }
};

TEST_F(EndpointsTest, AFreshStartHasNewKeysOneForClientsOneForEnginesAndThisProcessAsController) {
  const auto ep = Endpoints::prepare(options());
  EXPECT_EQ(ep.client.key.size(), 64u);
  EXPECT_EQ(ep.engine.key.size(), 64u);
  EXPECT_NE(ep.client.key, ep.engine.key);
  EXPECT_NE(Endpoints::prepare(options()).client.key, ep.client.key);
  EXPECT_EQ(ep.client.controller_pid, ::getpid());
  ASSERT_FALSE(ep.shm_dir.empty());
  EXPECT_EQ(ep.shm_dir.parent_path(), shm_root.path());
  EXPECT_NE(ep.shm, nullptr);
  EXPECT_FALSE(ep.client.shm_token.empty());
}

TEST_F(EndpointsTest, EverySocketListensOnItsOwnPortAndTheFilesSayWhere) {
  Sockets s;
  auto ep = Endpoints::prepare(options());
  Endpoints::configure(s.all);
  ep.bind(s.all, options());
  ep.write_files(profile.path());

  std::set<std::string> seen;
  for (const auto* info : {&ep.client, &ep.engine}) {
    for (const auto& [channel, at] : info->endpoints) {
      EXPECT_EQ(at.rfind("tcp://127.0.0.1:", 0), 0u) << channel << " " << at;
      seen.insert(at);
    }
  }
  EXPECT_EQ(seen.size(), 6u) << "registration is shared; six sockets, six ports";
  EXPECT_EQ(ep.client.endpoints.size(), 3u);  // registration, direct, balanced
  EXPECT_EQ(ep.engine.endpoints.size(), 4u);  // registration, heartbeat, engine_*
  EXPECT_FALSE(ep.client.endpoints.contains("heartbeat"));
  EXPECT_EQ(ep.client.local_endpoints.size(), 2u);
  EXPECT_EQ(ep.engine.local_endpoints.size(), 2u);

  const auto client = net::read_connection_file(profile.path() / net::kClientFile);
  EXPECT_EQ(client.endpoints, ep.client.endpoints);
  EXPECT_EQ(client.local_endpoints, ep.client.local_endpoints);
  EXPECT_EQ(client.key, ep.client.key);
  const auto engine = net::read_connection_file(profile.path() / net::kEngineFile);
  EXPECT_EQ(engine.endpoints, ep.engine.endpoints);
}

TEST_F(EndpointsTest, SocketsAreConfiguredBeforeBinding) {
  Sockets s;
  Endpoints::configure(s.all);
  EXPECT_EQ(s.registration.get(zmq::sockopt::linger), 0);
  EXPECT_EQ(s.heartbeat.get(zmq::sockopt::maxmsgsize), Endpoints::kMaxFrame);
  EXPECT_EQ(s.engine_direct.get(zmq::sockopt::sndhwm), 0);
  EXPECT_EQ(s.engine_balanced.get(zmq::sockopt::rcvhwm), 0);
  EXPECT_EQ(s.client_direct.get(zmq::sockopt::rcvhwm), 64);
  EXPECT_EQ(s.client_balanced.get(zmq::sockopt::sndhwm), 0);
}

TEST_F(EndpointsTest, WithoutSharedMemoryThereAreNoUnixSockets) {
  auto o = options();
  o.shared_memory = false;
  Sockets s;
  auto ep = Endpoints::prepare(o);
  EXPECT_TRUE(ep.shm_dir.empty());
  EXPECT_EQ(ep.shm, nullptr);
  EXPECT_TRUE(ep.client.shm_dir.empty());
  ep.bind(s.all, o);
  EXPECT_TRUE(ep.client.local_endpoints.empty());
  EXPECT_TRUE(std::filesystem::is_empty(shm_root.path()));
}

TEST_F(EndpointsTest, ARestoreListensOnTheSamePortsWithTheSameKey) {
  Endpoints first = Endpoints::prepare(options());
  {
    Sockets s;
    first.bind(s.all, options());
    first.write_files(profile.path());
  }
  auto o = options();
  o.restore = true;
  Endpoints again = Endpoints::prepare(o);
  EXPECT_EQ(again.client.key, first.client.key);
  EXPECT_EQ(again.shm_dir, first.shm_dir) << "peers keep using the directory they know";
  Sockets s;
  again.bind(s.all, o);
  EXPECT_EQ(again.client.endpoints, first.client.endpoints);
  EXPECT_EQ(again.engine.endpoints, first.engine.endpoints);
}

TEST_F(EndpointsTest, AWildcardListensEverywhereAndTheFilesNameAnAddressPeersReach) {
  auto o = options();
  o.ip = "0.0.0.0";
  Sockets s;
  auto ep = Endpoints::prepare(o);
  ep.bind(s.all, o);
  for (const auto& [channel, at] : ep.client.endpoints) {
    EXPECT_EQ(at.find("0.0.0.0"), std::string::npos) << channel << ": " << at;
    EXPECT_EQ(at.find(net::default_location("0.0.0.0")), 6u) << at;
  }
  EXPECT_EQ(ep.client.listen, "0.0.0.0");
  o.location = "head-node.example";
  Sockets again;
  auto named = Endpoints::prepare(o);
  named.bind(again.all, o);
  EXPECT_EQ(named.engine.endpoints.at("heartbeat").rfind("tcp://head-node.example:", 0), 0u)
      << named.engine.endpoints.at("heartbeat");
}

TEST_F(EndpointsTest, FixedPortsAndPortRangesAreWhereTheSocketsListen) {
  // Ports the system hands out are free now: take six of them, then let them go.
  std::vector<int> free_ports;
  {
    Sockets probe;
    auto ep = Endpoints::prepare(options());
    ep.bind(probe.all, options());
    for (const char* c :
         {"registration", "heartbeat", "direct", "engine_direct", "balanced", "engine_balanced"})
      free_ports.push_back(net::port_of(c == std::string("heartbeat") ||
                                                c == std::string("engine_direct") ||
                                                c == std::string("engine_balanced")
                                            ? ep.engine.endpoint(c)
                                            : ep.client.endpoint(c)));
  }
  auto o = options();
  o.ports = free_ports;
  {
    Sockets s;
    auto ep = Endpoints::prepare(o);
    ep.bind(s.all, o);
    EXPECT_EQ(ep.client.endpoint("registration"),
              "tcp://127.0.0.1:" + std::to_string(free_ports[0]));
    EXPECT_EQ(ep.engine.endpoint("engine_balanced"),
              "tcp://127.0.0.1:" + std::to_string(free_ports[5]));
    // The same ports again, taken: the error names the address.
    Sockets taken;
    auto other = Endpoints::prepare(o);
    try {
      other.bind(taken.all, o);
      ADD_FAILURE() << "bound ports in use";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(free_ports[0])), std::string::npos)
          << e.what();
    }
  }
  o.ports = {1, 2, 3};
  Sockets s;
  auto ep = Endpoints::prepare(o);
  EXPECT_THROW(ep.bind(s.all, o), UsageError) << "six ports or none";

  auto r = options();
  r.port_range = {free_ports[0], free_ports[0] + 200};
  Sockets ranged;
  auto in_range = Endpoints::prepare(r);
  in_range.bind(ranged.all, r);
  for (const auto* info : {&in_range.client, &in_range.engine}) {
    for (const auto& [channel, at] : info->endpoints) {
      const int port = net::port_of(at);
      EXPECT_GE(port, r.port_range.first) << channel;
      EXPECT_LE(port, r.port_range.second) << channel;
    }
  }
  auto narrow = options();
  narrow.port_range = {free_ports[0], free_ports[0]};  // taken just above, and only one
  Sockets few;
  auto none_left = Endpoints::prepare(narrow);
  EXPECT_THROW(none_left.bind(few.all, narrow), UsageError);
}

TEST_F(EndpointsTest, IPv6AndHostNamesAreAddressesToo) {
  auto o = options();
  o.ip = "::1";
  Sockets s;
  auto v6 = Endpoints::prepare(o);
  v6.bind(s.all, o);
  EXPECT_EQ(v6.client.endpoint("registration").rfind("tcp://[::1]:", 0), 0u)
      << v6.client.endpoint("registration");
  // A peer reaches it.
  zmq::socket_t peer(s.ctx, zmq::socket_type::dealer);
  peer.set(zmq::sockopt::linger, 0);
  net::connect(peer, v6.client.endpoint("registration"));
  peer.send(zmq::str_buffer("hello"), zmq::send_flags::none);
  s.registration.set(zmq::sockopt::rcvtimeo, 5000);
  zmq::message_t from, body;
  ASSERT_TRUE(s.registration.recv(from));
  ASSERT_TRUE(s.registration.recv(body));
  EXPECT_EQ(body.to_string(), "hello");

  o.ip = "localhost";
  Sockets named;
  auto host = Endpoints::prepare(o);
  host.bind(named.all, o);
  EXPECT_EQ(host.client.endpoint("direct").rfind("tcp://localhost:", 0), 0u)
      << "peers are told the name they were given";
  o.ip = "no-such-host.invalid";
  Sockets bad;
  auto unknown = Endpoints::prepare(o);
  try {
    unknown.bind(bad.all, o);
    ADD_FAILURE() << "listened on a host that does not resolve";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-host.invalid"), std::string::npos) << e.what();
  }
}

TEST_F(EndpointsTest, ARestoreListensWhereTheOldControllerDid) {
  auto o = options();
  o.ip = "0.0.0.0";
  Endpoints first = Endpoints::prepare(o);
  {
    Sockets s;
    first.bind(s.all, o);
    first.write_files(profile.path());
  }
  auto r = options();  // --ip not given again
  r.restore = true;
  Endpoints again = Endpoints::prepare(r);
  EXPECT_EQ(again.client.listen, "0.0.0.0");
  Sockets s;
  again.bind(s.all, r);
  EXPECT_EQ(again.client.endpoints, first.client.endpoints);
  EXPECT_EQ(again.client.listen, "0.0.0.0");
}

TEST_F(EndpointsTest, ARestoreWhileTheOldControllerListensSaysSo) {
  Endpoints first = Endpoints::prepare(options());
  Sockets old;
  first.bind(old.all, options());
  first.write_files(profile.path());
  auto o = options();
  o.restore = true;
  Endpoints again = Endpoints::prepare(o);
  Sockets s;
  try {
    again.bind(s.all, o);
    FAIL() << "bound a port another socket holds";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("is the old controller still running?"), std::string::npos)
        << e.what();
  }
}

TEST_F(EndpointsTest, ARestoreKeepsTheClientsKeyAndTheEnginesKey) {
  const Endpoints first = Endpoints::prepare(options());
  first.write_files(profile.path());
  auto o = options();
  o.restore = true;
  const Endpoints again = Endpoints::prepare(o);
  EXPECT_EQ(again.client.key, first.client.key);
  EXPECT_EQ(again.engine.key, first.engine.key);
}

TEST_F(EndpointsTest, EncryptionIsOnUnlessListeningOnLoopbackOnlyOrToldOtherwise) {
  auto o = options();
  EXPECT_FALSE(Endpoints::wants_encryption(o)) << o.ip;
  o.ip = "0.0.0.0";
  EXPECT_TRUE(Endpoints::wants_encryption(o));
  o.encryption = "off";
  EXPECT_FALSE(Endpoints::wants_encryption(o));
  o.ip = "::1";
  o.encryption = "on";
  EXPECT_TRUE(Endpoints::wants_encryption(o));
  o.encryption = "maybe";
  EXPECT_THROW((void)Endpoints::wants_encryption(o), UsageError);
  EXPECT_FALSE(Endpoints::prepare(options()).encrypted());
}

TEST_F(EndpointsTest, EncryptedKeysArePerSideAndARestoreFindsTheControllersOwnAgain) {
  auto o = options();
  o.encryption = "on";
  const Endpoints first = Endpoints::prepare(o);
  ASSERT_TRUE(first.encrypted());
  EXPECT_EQ(first.client.curve.server_key, first.secrets.server.public_key);
  EXPECT_EQ(first.engine.curve.server_key, first.secrets.server.public_key);
  EXPECT_EQ(first.client.curve.public_key, first.secrets.client_public);
  EXPECT_EQ(first.engine.curve.public_key, first.secrets.engine_public);
  first.write_files(profile.path());
  o.restore = true;
  const Endpoints again = Endpoints::prepare(o);
  EXPECT_EQ(again.secrets.server.secret_key, first.secrets.server.secret_key);
  EXPECT_EQ(again.client.curve.secret_key, first.client.curve.secret_key);
  // Without the controller's own file a restore cannot take the cluster's keys over.
  std::filesystem::remove(profile.path() / net::kControllerFile);
  EXPECT_THROW((void)Endpoints::prepare(o), ConnectionError);
  // A fresh start without encryption leaves no stale controller file behind.
  Endpoints plain = Endpoints::prepare(options());
  first.write_files(profile.path());
  plain.write_files(profile.path());
  EXPECT_FALSE(std::filesystem::exists(profile.path() / net::kControllerFile));
}

TEST_F(EndpointsTest, ARestoreWithoutFilesFailsNamingWhatIsMissing) {
  auto o = options();
  o.restore = true;
  EXPECT_THROW((void)Endpoints::prepare(o), ConnectionError);
}

TEST_F(EndpointsTest, AFreshStartRemovesWhatADeadControllerLeftInSharedMemory) {
  Endpoints dead = Endpoints::prepare(options());
  dead.client.controller_pid = 0;  // no such process: it died
  dead.write_files(profile.path());
  ASSERT_TRUE(std::filesystem::exists(dead.shm_dir));
  const Endpoints fresh = Endpoints::prepare(options());
  EXPECT_FALSE(std::filesystem::exists(dead.shm_dir));
  EXPECT_TRUE(std::filesystem::exists(fresh.shm_dir));
}

}  // namespace
}  // namespace ipp::ctrl

namespace ipp::ctrl {
namespace {

TEST(ControllerDefaults, TheTaskDatabaseIsBoundedByDefault) {
  const ControllerOptions o;
  EXPECT_GT(o.db_record_limit, 0);
  EXPECT_GT(o.db_size_limit, 0);
}

}  // namespace
}  // namespace ipp::ctrl
