// Large arrays through shared memory on one host: values arrive whole in both directions,
// an engine that does not map it still gets the same values through the sockets, the files
// go once their values are gone, the hub still records what it keeps, and a part that is
// missing gives an error naming it.

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <numeric>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ipp/client.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/shm.hpp"
#include "support/cluster.hpp"

namespace ipp {
namespace {

using namespace std::chrono_literals;

class SharedMemoryCluster : public test::Cluster {
 protected:
  /// Engine 0 maps shared memory, engine 1 (started with --no-shm) does not.
  void start_mixed() {
    start(1);
    add_engine(2, {"--no-shm"});
    wait_for_engines(2);
    rc_ = std::make_unique<Client>(ClientOptions{.profile_dir = dir_.path()});
    rc_->push_plugin(test::plugin("arrays"));
    rc_->push_plugin(test::plugin("arith"));
    shm_dir_ = client_->info().shm_dir;
    ASSERT_FALSE(shm_dir_.empty()) << "the controller offers no shared memory";
  }
  /// The part files in the cluster's directory.
  std::set<std::string> parts() const {
    std::set<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(shm_dir_)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("t-", 0) == 0 || name.rfind("h-", 0) == 0) out.insert(name);
    }
    return out;
  }
  std::unique_ptr<Client> rc_;
  std::filesystem::path shm_dir_;
};

TEST_F(SharedMemoryCluster, LargeArraysArriveWholeWithAndWithoutSharedMemory) {
  start_mixed();
  std::vector<double> xs(600000);  // 4.8 MB: well over the threshold
  std::iota(xs.begin(), xs.end(), 0.0);
  const Value v(Array::from(xs));
  DirectView both = rc_->direct_view();
  both.push({{"v", v}});
  const Value pulled = both.pull("v");
  ASSERT_EQ(pulled.size(), 2u);
  EXPECT_EQ(pulled[0], v);
  EXPECT_EQ(pulled[1], v);
  // A result made on the engine comes back through shared memory from engine 0, inline from 1.
  const Value scaled = both.apply("scale", {v, 2.0});
  for (std::size_t e = 0; e < 2; ++e) {
    const auto got = scaled[e].as_array().view<double>();
    ASSERT_EQ(got.size(), xs.size());
    EXPECT_EQ(got[123456], 2.0 * 123456) << e;
  }
  EXPECT_DOUBLE_EQ(both.apply("sum", {ipp::ref("v")})[0].as_float(),
                   static_cast<double>(xs.size()) * (xs.size() - 1) / 2);
  // A map over arrays split between both engines gathers whole.
  std::vector<std::int64_t> a(1000000), b(1000000);
  std::iota(a.begin(), a.end(), 0);
  std::iota(b.begin(), b.end(), 1);
  const Value out = both.map("mul", {Value(Array::from(a)), Value(Array::from(b))});
  ASSERT_EQ(out.size(), a.size());
  EXPECT_EQ(out.as_array().view<std::int64_t>()[999999], 999999LL * 1000000);
  // Through the load-balanced queue too, to the engine that maps and the one that does not.
  LoadBalancedView lb = rc_->load_balanced_view();
  std::vector<AsyncResult> sums;
  for (int i = 0; i < 8; ++i)
    sums.push_back(lb.apply_async("sum", {v}));
  for (auto& s : sums)
    EXPECT_DOUBLE_EQ(s.get(30s).as_float(), static_cast<double>(xs.size()) * (xs.size() - 1) / 2);
}

TEST_F(SharedMemoryCluster, FilesGoWithTheirValues) {
  start_mixed();
  {
    std::vector<double> xs(400000, 1.5);
    const Value v(Array::from(xs));
    DirectView e0 = (*rc_)[0];
    e0.push({{"v", v}});
    EXPECT_EQ(e0.pull("v"), v);
    EXPECT_FALSE(parts().empty());
    e0.clear();
  }
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!parts().empty()) {  // the hub may still hold a copy for a moment
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << *parts().begin();
    std::this_thread::sleep_for(20ms);
  }
}

TEST_F(SharedMemoryCluster, ArraysPushedAgainArriveWholeAndValuesHeldStayAsTheyWere) {
  // Pushes of one size come back to the files of earlier ones (through the pool) and are
  // written through the mappings this client kept; a value an engine holds is never written.
  start_mixed();
  DirectView e0 = (*rc_)[0];
  constexpr std::size_t kN = std::size_t{2} << 20;  // 16 MiB of float64
  auto array = [&](double start) {
    std::vector<double> xs(kN);
    std::iota(xs.begin(), xs.end(), start);
    return Value(Array::from(std::move(xs)));
  };
  const Value held = array(-7);
  e0.push({{"held", held}});
  const auto reused = net::SharedMemory::kept_mappings().reused;
  for (int round = 0; round < 6; ++round) {
    const Value v = array(round * 1000.0);
    e0.push({{"v", v}});
    EXPECT_EQ(e0.pull("v"), v) << round;
    EXPECT_DOUBLE_EQ(e0.apply("sum", {ipp::ref("v")}).as_float(),
                     static_cast<double>(kN) * round * 1000.0 + kN * (kN - 1.0) / 2)
        << round;
    e0.execute("del v").get(30s);
    // Its file goes back to the pool once the hub, which keeps a copy, lets go too: then only
    // the engine's name for `held` is left.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (parts().size() != 1) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << parts().size();
      std::this_thread::sleep_for(5ms);
    }
  }
  EXPECT_GT(net::SharedMemory::kept_mappings().reused, reused);
  EXPECT_EQ(e0.pull("held"), held);
}

TEST_F(SharedMemoryCluster, WhatADeadEngineHeldGoesAsSoonAsItIsDeclaredDead) {
  start_mixed();
  std::vector<double> xs(600000);
  (*rc_)[0].push({{"v", Value(Array::from(xs))}});  // engine 0 holds it in shared memory
  const pid_t pid = engine_process(0).pid();
  const std::string held = fmt::format("h-{}-", pid);
  auto holds = [&] {
    const auto now = parts();
    return std::any_of(now.begin(), now.end(),
                       [&](const std::string& p) { return p.rfind(held, 0) == 0; });
  };
  ASSERT_TRUE(holds());
  engine_process(0).signal(SIGKILL);  // not reaped: a zombie, as under a busy parent
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (client_->query("ids").value.size() != 1)
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "engine 0 was not declared dead";
  // Not the next periodic sweep (every 10 s): at once.
  const auto declared = std::chrono::steady_clock::now();
  while (holds() && std::chrono::steady_clock::now() - declared < 3s)
    std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(holds()) << "the dead engine's files are still there";
}

TEST_F(SharedMemoryCluster, AnIdleEngineLetsGoOfTheMappingsItKept) {
  // A large result is allocated in shared memory on the engine, which keeps its mapping when
  // the result has gone out; after a second without work the engine lets go of it.
  start_mixed();
  DirectView e0 = (*rc_)[0];
  const auto pid = e0.apply("getpid", {}).as_int();
  auto kept = [&] {  // the engine's writable mappings of the cluster's files
    std::ifstream maps(fmt::format("/proc/{}/maps", pid));
    std::size_t n = 0;
    for (std::string line; std::getline(maps, line);) {
      if (line.find(shm_dir_.string()) != std::string::npos &&
          line.find(" rw-s ") != std::string::npos)
        ++n;
    }
    return n;
  };
  const Value result = e0.apply("iota", {std::int64_t{2} << 20});  // 16 MiB
  ASSERT_EQ(result.size(), std::size_t{2} << 20);
  EXPECT_GE(kept(), 1u);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (kept() != 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << kept();
    std::this_thread::sleep_for(50ms);
  }
}

TEST_F(SharedMemoryCluster, TheHubKeepsWhatCameThroughSharedMemory) {
  start_mixed();
  std::vector<double> xs(300000, 2.0);
  const AsyncResult r = (*rc_)[0].apply_async("sum", {Value(Array::from(xs))});
  ASSERT_DOUBLE_EQ(r.get(30s).as_float(), 600000.0);
  const std::string id = r.msg_ids()[0];
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (rc_->db_query({{"msg_id", "==", id}, {"status", "==", "ok"}}).size() != 1) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_DOUBLE_EQ(rc_->resubmit({id}).get(30s).as_float(), 600000.0);  // stored, sent again
}

TEST_F(SharedMemoryCluster, APartThatIsNotThereIsAnErrorNamingItAndTheSchedulerGoesOn) {
  start_mixed();
  net::Header h;
  h.type = net::MsgType::ApplyRequest;
  h.msg_id = net::new_id();
  h.task = "sum";
  h.target = 0;
  const Buffer header = net::encode_header(h);
  const Buffer root = encode(Value::list({1})).root;
  const net::SharedMemory::Ref ref{};  // names a part nobody wrote
  const std::uint8_t mask[] = {0x04};  // part 2 (after header and root) is a reference
  const std::span<const std::byte> signed_parts[] = {std::as_bytes(std::span(mask)), header.bytes(),
                                                     root.bytes(), std::span(ref)};
  const auto sig = client_->signer().sign(signed_parts);
  std::vector<zmq::message_t> frames;
  frames.emplace_back();
  frames.emplace_back("IPP/1M", 6);
  zmq::message_t sig_frame(sig.size() + 1);
  std::memcpy(sig_frame.data(), sig.data(), sig.size());
  std::memcpy(static_cast<char*>(sig_frame.data()) + sig.size(), mask, 1);
  frames.push_back(std::move(sig_frame));
  frames.emplace_back(header.data(), header.size());
  frames.emplace_back(root.data(), root.size());
  frames.emplace_back(ref.data(), ref.size());
  client_->send_frames(false, std::move(frames));
  const test::Reply reply = client_->receive(false);
  ASSERT_TRUE(reply.header.error);
  EXPECT_EQ(reply.header.parent_id, h.msg_id);
  EXPECT_EQ(reply.header.error->code, ErrorCode::protocol);
  EXPECT_NE(reply.header.error->message.find("could not be read"), std::string::npos)
      << reply.header.error->message;
  EXPECT_NE(reply.header.error->message.find("t-0000"), std::string::npos);
  EXPECT_EQ((*rc_)[0].apply("mul", {6, 7}), Value(42));
}

// The task channels as Unix sockets: peers that see the cluster's directory (on the
// controller's host) use them; others, and every peer of a controller started with --no-ipc,
// use TCP.
class LocalSockets : public test::Cluster {
 protected:
  /// A copy of the connection file `name` in `copies_`, changed by `edit`.
  template <typename Edit>
  std::filesystem::path edited(const char* name, Edit&& edit) {
    net::ConnectionInfo info = net::read_connection_file(dir_ / name);
    edit(info);
    const auto out = copies_ / name;
    net::write_connection_file(out, info);
    return out;
  }
  /// Load-balanced and direct tasks through `client`, each with a deadline (a channel that
  /// leads nowhere would otherwise wait for ever).
  static void tasks_work(Client& client, std::int64_t engine) {
    LoadBalancedView lb = client.load_balanced_view();
    std::vector<AsyncResult> sums;
    for (int i = 0; i < 8; ++i)
      sums.push_back(lb.apply_async("add", {i, 1}));
    for (int i = 0; i < 8; ++i)
      EXPECT_EQ(sums[i].get(20s), Value(i + 1));
    EXPECT_EQ(client[engine].apply_async("mul", {6, 7}).get(20s), Value(42));
    EXPECT_EQ(client[engine].apply_sync("mul", {2, 3}), Value(6));
  }
  static constexpr const char* kNowhere = "tcp://127.0.0.1:1";  // nothing listens on port 1
  test::TempDir copies_;
};

TEST_F(LocalSockets, PeersOnThisHostUseTheUnixSockets) {
  start(1);
  const auto clients = net::read_connection_file(dir_ / net::kClientFile);
  const auto engines = net::read_connection_file(dir_ / net::kEngineFile);
  ASSERT_FALSE(clients.shm_dir.empty());
  auto is_socket_in_dir = [&](const std::string& ep) {
    const std::string prefix = "ipc://" + clients.shm_dir + "/";
    if (ep.rfind(prefix, 0) != 0) return false;
    struct stat st {};
    return ::stat(ep.substr(6).c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
  };
  for (const char* ch : {"direct", "balanced"})
    EXPECT_TRUE(is_socket_in_dir(clients.endpoint(ch, true))) << ch;
  for (const char* ch : {"engine_direct", "engine_balanced"})
    EXPECT_TRUE(is_socket_in_dir(engines.endpoint(ch, true))) << ch;
  EXPECT_EQ(clients.local_endpoints.size(), 2u);  // registration and heartbeat stay on TCP
  EXPECT_EQ(engines.local_endpoints.size(), 2u);

  // A client and an engine whose task channels' TCP endpoints lead nowhere still run tasks:
  // they reach the schedulers through the Unix sockets.
  const auto engine_file = edited(net::kEngineFile, [](net::ConnectionInfo& i) {
    i.endpoints["engine_direct"] = i.endpoints["engine_balanced"] = kNowhere;
  });
  add_engine(1, {"--file", engine_file.string()});
  wait_for_engines(2);
  const auto client_file = edited(net::kClientFile, [](net::ConnectionInfo& i) {
    i.endpoints["direct"] = i.endpoints["balanced"] = kNowhere;
  });
  Client c(ClientOptions{.profile_dir = std::nullopt, .connection_file = client_file});
  c.push_plugin(test::plugin("arith"));
  tasks_work(c, 1);  // engine 1 is the one started from the edited file
  tasks_work(c, 0);
}

TEST_F(LocalSockets, PeersThatDoNotSeeTheDirectoryUseTcp) {
  start(1);
  // As a peer on another host: the directory's token does not match, and the Unix sockets
  // named lead nowhere. Its tasks go over TCP.
  auto elsewhere = [](net::ConnectionInfo& i) {
    i.shm_token = std::string(32, '0');
    for (auto& [channel, ep] : i.local_endpoints)
      ep = "ipc:///nonexistent/ipp-" + channel + ".sock";
  };
  add_engine(1, {"--file", edited(net::kEngineFile, elsewhere).string()});
  wait_for_engines(2);
  Client c(ClientOptions{.profile_dir = std::nullopt,
                         .connection_file = edited(net::kClientFile, elsewhere)});
  c.push_plugin(test::plugin("arith"));
  tasks_work(c, 1);
  tasks_work(c, 0);
}

TEST_F(LocalSockets, AControllerStartedWithNoIpcOffersNone) {
  start(1, 2, {"--no-ipc"});
  EXPECT_TRUE(net::read_connection_file(dir_ / net::kClientFile).local_endpoints.empty());
  EXPECT_TRUE(net::read_connection_file(dir_ / net::kEngineFile).local_endpoints.empty());
  Client c(ClientOptions{.profile_dir = dir_.path()});
  c.push_plugin(test::plugin("arith"));
  tasks_work(c, 0);
}

}  // namespace
}  // namespace ipp
