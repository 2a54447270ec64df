// Where a controller listens: fresh keys and ports, shared memory and Unix sockets, connection
// files written and read back, restores on the same ports, and the errors of a bad restore.

#include "endpoints.hpp"

#include <gtest/gtest.h>

#include <set>

#include "ipp/error.hpp"
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

TEST_F(EndpointsTest, AFreshStartHasOneNewKeyAndThisProcessAsController) {
  const auto ep = Endpoints::prepare(options());
  EXPECT_EQ(ep.client.key.size(), 64u);
  EXPECT_EQ(ep.client.key, ep.engine.key);
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

TEST_F(EndpointsTest, ARestoreOfFilesWithDifferentKeysIsRefused) {
  Endpoints first = Endpoints::prepare(options());
  first.engine.key = net::Signer::new_key();
  first.write_files(profile.path());
  auto o = options();
  o.restore = true;
  EXPECT_THROW((void)Endpoints::prepare(o), UsageError);
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
