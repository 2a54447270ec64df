// A real controller and real engines as processes on loopback, driven over the wire.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "ipp/client.hpp"
#include "ipp/net/engine_exit.hpp"
#include "support/cluster.hpp"

namespace ipp {
namespace {

using namespace std::chrono_literals;

using test::Cluster;

TEST_F(Cluster, EnginesRegisterWithIdsInOrder) {
  start(2);
  EXPECT_EQ(client_->query("ids").value.repr(), "[0, 1]");
}

// The threads are named, and the hub's runs niced (default 10) so that, when the CPU is
// short, the schedulers get it and the hub catches up after.
TEST_F(Cluster, ControllerThreadsAreNamedAndTheHubGivesWay) {
  start(1);
  std::map<std::string, int> nice;
  const auto tasks = std::filesystem::path("/proc") / std::to_string(controller_->pid()) / "task";
  for (const auto& t : std::filesystem::directory_iterator(tasks)) {
    std::ifstream comm(t.path() / "comm");
    std::string name;
    std::getline(comm, name);
    std::ifstream stat(t.path() / "stat");
    std::string line;
    std::getline(stat, line);
    // After "pid (comm) ": state is field 3, nice field 19.
    std::istringstream fields(line.substr(line.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 19; ++i)
      fields >> field;
    nice[name] = std::stoi(field);
  }
  for (const char* n : {"ipp-hub", "ipp-heart", "ipp-direct", "ipp-balanced"})
    EXPECT_EQ(nice.count(n), 1u) << n;
  EXPECT_EQ(nice["ipp-hub"], 10);
  EXPECT_EQ(nice["ipp-balanced"], 0);
  EXPECT_EQ(nice["ipp-direct"], 0);
  EXPECT_EQ(nice["ipp-heart"], 0);
}

TEST_F(Cluster, PushedPluginRunsOnEveryEngine) {
  start(2);
  auto pushed = client_->push(test::plugin("arith"));
  ASSERT_FALSE(pushed.header.error) << pushed.header.error->describe();
  EXPECT_EQ(pushed.header.info["engines"].repr(), "{'0': 'ok', '1': 'ok'}");
  for (int e = 0; e < 2; ++e) {
    auto r = client_->apply(e, "mul", {5, 6});
    ASSERT_FALSE(r.header.error) << r.header.error->describe();
    EXPECT_EQ(r.value, Value(30));
    EXPECT_EQ(r.header.engine, e);
  }
  auto b = client_->apply(-1, "mul", {7, 6});
  EXPECT_EQ(b.value, Value(42));
  auto m = client_->apply(0, "mul", {Range::inclusive(1, 9), Range::inclusive(2, 10)}, true);
  EXPECT_EQ(m.value.repr(), "[2, 6, 12, 20, 30, 42, 56, 72, 90]");
}

TEST_F(Cluster, BuiltInPluginIsThereFromTheStart) {
  start(1);
  auto r = client_->apply(0, "sysinfo.getpid", {});
  ASSERT_FALSE(r.header.error) << r.header.error->describe();
  EXPECT_EQ(r.value.as_int(), engines_[0]->pid());
}

TEST_F(Cluster, ErrorsComeBackTyped) {
  start(1);
  client_->push(test::plugin("arith"));
  auto unknown = client_->apply(0, "nope", {});
  ASSERT_TRUE(unknown.header.error);
  EXPECT_EQ(unknown.header.error->code, ErrorCode::task_not_found);
  auto wrong = client_->apply(0, "mul", {1, "x"});
  ASSERT_TRUE(wrong.header.error);
  EXPECT_EQ(wrong.header.error->message, "argument 2 (int64): expected int64, got string");
  EXPECT_EQ(wrong.header.error->engine, 0);
  auto missing = client_->apply(5, "mul", {1, 2});
  ASSERT_TRUE(missing.header.error);
  EXPECT_EQ(missing.header.error->code, ErrorCode::engine);
  EXPECT_EQ(missing.header.error->message, "no engine 5 is registered (engines: [0])");
}

TEST_F(Cluster, PushingAFileThatIsNotAPluginIsRefused) {
  start(1);
  auto r = client_->push(test::test_plugin("plain"));
  ASSERT_TRUE(r.header.error);
  EXPECT_EQ(r.header.error->code, ErrorCode::plugin_load);
  EXPECT_NE(r.header.error->message.find("not an ipp plugin"), std::string::npos);
  EXPECT_EQ(client_->query("ids").value.repr(), "[0]");
}

TEST_F(Cluster, LoadBalancedTasksGoOnlyToEnginesWhereTheirPluginLoaded) {
  start(1);
  // A second engine whose plugin store already holds garbage under arith.so's content hash:
  // the push fails there (as on a host whose copy was damaged).
  const auto store = dir_ / "damaged-store";
  std::filesystem::create_directories(store);
  const auto sum = dir_ / "arith.sha256";
  ASSERT_EQ(
      std::system(
          ("sha256sum '" + test::plugin("arith").string() + "' > '" + sum.string() + "'").c_str()),
      0);
  const std::string hash = test::slurp(sum).substr(0, 64);
  std::ofstream(store / (hash + ".so")) << "not a plugin";
  add_engine(2, {"--store", store.string()});
  wait_for_engines(2);
  const auto pushed = client_->push(test::plugin("arith"));
  ASSERT_TRUE(pushed.header.error) << "it failed on engine 1";
  EXPECT_EQ(pushed.value["engines"]["0"], Value("ok")) << pushed.value.repr();
  EXPECT_NE(pushed.value["engines"]["1"], Value("ok")) << pushed.value.repr();
  // Every task goes to engine 0, the one that has it: none fails with TaskNotFound.
  Client rc(ClientOptions{.profile_dir = dir_.path(), .timeout = Duration(30000)});
  const auto lb = rc.load_balanced_view();
  const AsyncResult r = lb.map_async("mul", {ipp::Range{0, 40}, ipp::Range{0, 40}}, 1);
  const Value out = r.get();
  EXPECT_TRUE(out.repr().ends_with(", 1444, 1521]")) << out.repr();
  for (const auto& m : r.metadata())
    EXPECT_EQ(m.engine, 0) << m.msg_id;
  EXPECT_EQ(lb.apply("arith.mul", {3, 4}), Value(12));
  // A task no engine is known to have still goes somewhere, and is answered.
  const test::Reply nowhere = client_->apply(-1, "nowhere", {});
  ASSERT_TRUE(nowhere.header.error);
  EXPECT_EQ(nowhere.header.error->code, ErrorCode::task_not_found);
}

TEST_F(Cluster, LateEnginesGetEveryPluginBeforeTakingTasks) {
  start(1);
  client_->push(test::plugin("arith"));
  add_engine();
  wait_for_engines(2);
  auto r = client_->apply(1, "mul", {3, 4});
  ASSERT_FALSE(r.header.error) << r.header.error->describe();
  EXPECT_EQ(r.value, Value(12));
}

TEST_F(Cluster, AReplayedTaskIsRefusedRunsOnceAndLeavesNothingQueued) {
  start(1);
  client_->push(test::plugin("arith"));
  std::string id;
  const auto frames = client_->signed_apply(0, "mul", {6, 7}, id);
  auto copy = [&] {
    std::vector<zmq::message_t> out;
    for (const auto& f : frames)
      out.emplace_back(f.data(), f.size());
    return out;
  };
  client_->send_frames(false, copy());
  const test::Reply first = client_->receive(false);
  EXPECT_EQ(first.header.parent_id, id);
  EXPECT_EQ(first.value, Value(42));
  // The same frames again, as a recorder of the traffic would send them: refused.
  client_->send_frames(false, copy());
  client_->send_frames(false, copy());
  EXPECT_EQ(client_->apply(0, "mul", {2, 3}).value, Value(6))
      << "the next reply is the next task's";
  const test::Reply status = client_->query("queue_status");
  EXPECT_EQ(status.value["0"]["queue"], Value(0)) << status.value.repr();
  const test::Reply row = client_->query("result", Value::map({{"msg_id", id}}));
  EXPECT_EQ(row.value["status"], Value("ok"));
  std::this_thread::sleep_for(200ms);
  EXPECT_NE(test::slurp(dir_ / "controller.log").find("sent again"), std::string::npos);
}

TEST_F(Cluster, ATaskChangedOnTheWayIsAnsweredWithAnErrorNotLeftWaiting) {
  start(1);
  client_->push(test::plugin("arith"));
  std::string id;
  auto frames = client_->signed_apply(0, "mul", {6, 7}, id);
  // One bit of the arguments flipped on the way: the signature no longer holds.
  auto& last = frames.back();
  static_cast<std::uint8_t*>(last.data())[last.size() - 1] ^= 1;
  client_->send_frames(false, std::move(frames));
  const test::Reply r = client_->receive(false);
  EXPECT_EQ(r.header.parent_id, id);
  ASSERT_TRUE(r.header.error);
  EXPECT_EQ(r.header.error->code, ErrorCode::protocol);
  EXPECT_NE(r.header.error->message.find("signature"), std::string::npos)
      << r.header.error->message;
  EXPECT_EQ(client_->apply(0, "mul", {2, 3}).value, Value(6));
}

/// Passes messages between clients and a scheduler, and changes every id (each run of 32
/// hex digits: msg_id, session) in the first message of each of the first `n` connections,
/// as a host on the way could where nothing is encrypted.
class IdChanger {
 public:
  IdChanger(const std::string& scheduler, int n) : left_(n) {
    front_.set(zmq::sockopt::linger, 0);
    front_.bind("tcp://127.0.0.1:*");
    endpoint = front_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this, scheduler] { run(scheduler); });
  }
  ~IdChanger() {
    stop_ = true;
    thread_.join();
  }
  IdChanger(const IdChanger&) = delete;
  IdChanger& operator=(const IdChanger&) = delete;

  std::string endpoint;  ///< where clients connect instead of the scheduler

 private:
  // One DEALER to the scheduler per client, so each client's messages keep their order and
  // the scheduler answers each on its own connection.
  void run(const std::string& scheduler) {
    std::map<std::string, std::unique_ptr<zmq::socket_t>> backs;
    while (!stop_) {
      std::vector<zmq::pollitem_t> items{{front_.handle(), 0, ZMQ_POLLIN, 0}};
      std::vector<std::string> order;
      for (auto& [who, sock] : backs) {
        items.push_back({sock->handle(), 0, ZMQ_POLLIN, 0});
        order.push_back(who);
      }
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(20));
      std::vector<zmq::message_t> frames;
      if ((items[0].revents & ZMQ_POLLIN) &&
          zmq::recv_multipart(front_, std::back_inserter(frames))) {
        const std::string who = frames.front().to_string();
        auto& back = backs[who];
        if (!back) {
          back = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
          back->set(zmq::sockopt::linger, 0);
          back->connect(scheduler);
          if (left_ > 0) {  // its first message is changed
            --left_;
            for (std::size_t f = 1; f < frames.size(); ++f)
              change_ids(frames[f]);
          }
        }
        zmq::send_multipart(*back, std::span(frames).subspan(1));
      }
      for (std::size_t i = 0; i < order.size(); ++i) {
        if (!(items[i + 1].revents & ZMQ_POLLIN)) continue;
        std::vector<zmq::message_t> reply;
        if (!zmq::recv_multipart(*backs[order[i]], std::back_inserter(reply))) continue;
        front_.send(zmq::buffer(order[i]), zmq::send_flags::sndmore);
        zmq::send_multipart(front_, reply);
      }
    }
  }
  static void change_ids(zmq::message_t& frame) {
    auto* p = static_cast<char*>(frame.data());
    const auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
    std::size_t run = 0;
    for (std::size_t i = 0; i < frame.size(); ++i) {
      run = hex(p[i]) ? run + 1 : 0;
      if (run == 32) p[i - 31] = p[i - 31] == '0' ? '1' : '0';
    }
  }

  zmq::context_t ctx_;
  zmq::socket_t front_{ctx_, zmq::socket_type::router};
  int left_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(Cluster, ATaskWhoseIdsWereChangedOnTheWayFailsItsCallerInsteadOfLeavingItWaiting) {
  start(1);
  client_->push(test::plugin("arith"));
  // A client whose way to the direct scheduler goes through a host that changes the ids of
  // its first two requests: their answers name ids it never sent.
  net::ConnectionInfo info = net::read_connection_file(dir_ / net::kClientFile);
  IdChanger changer(info.endpoints.at("direct"), 2);
  info.endpoints["direct"] = changer.endpoint;
  info.local_endpoints.clear();
  write_connection_file(dir_ / "through-changer.json", info);
  ClientOptions options;
  options.connection_file = dir_ / "through-changer.json";
  options.timeout = Duration(30000);
  options.shared_memory = false;
  Client rc(options);
  const auto began = std::chrono::steady_clock::now();
  AsyncResult changed = rc[0].apply_async("mul", {6, 7});
  try {
    (void)changed.get(Duration(30000));
    ADD_FAILURE() << "a changed request was answered";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::protocol) << e.what();
    EXPECT_NE(std::string(e.what()).find("never received request " + changed.msg_ids()[0]),
              std::string::npos)
        << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - began, 20s);
  // A synchronous call waits on its own connection: asked about there.
  try {
    (void)rc[0].apply_sync("mul", {6, 7});
    ADD_FAILURE() << "a changed request was answered";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::protocol) << e.what();
  }
  // What is not changed is answered, on both ways.
  EXPECT_EQ(rc[0].apply_sync("mul", {6, 7}), Value(42));
  EXPECT_EQ(rc[0].apply_async("mul", {2, 3}).get(Duration(10000)), Value(6));
}

TEST_F(Cluster, GarbageOnEveryPortIsDroppedAndTheControllerGoesOn) {
  start(1);
  zmq::context_t ctx;
  auto engine_info = net::read_connection_file(dir_ / net::kEngineFile);
  std::vector<std::string> endpoints;
  for (const auto& [k, v] : client_->info().endpoints)
    endpoints.push_back(v);
  for (const auto& [k, v] : engine_info.endpoints)
    endpoints.push_back(v);
  // The task channels' Unix sockets too.
  ASSERT_EQ(client_->info().local_endpoints.size(), 2u);
  ASSERT_EQ(engine_info.local_endpoints.size(), 2u);
  for (const auto& [k, v] : client_->info().local_endpoints)
    endpoints.push_back(v);
  for (const auto& [k, v] : engine_info.local_endpoints)
    endpoints.push_back(v);
  for (const auto& ep : endpoints) {
    // A ZeroMQ peer sending junk frames, and one signing with the wrong key.
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 0);
    s.connect(ep);
    s.send(zmq::str_buffer("\x01\x02garbage"), zmq::send_flags::none);
    s.send(zmq::message_t(), zmq::send_flags::sndmore);
    s.send(zmq::str_buffer("IPP/1"), zmq::send_flags::sndmore);
    s.send(zmq::message_t(32), zmq::send_flags::sndmore);
    s.send(zmq::str_buffer("forged header"), zmq::send_flags::none);
    net::Signer wrong(net::Signer::new_key());
    net::Envelope env;
    net::Header h;
    h.type = net::MsgType::QueryRequest;
    h.task = "shutdown";
    env.parts.push_back(net::encode_header(h));
    net::send(s, wrong, env);
  }
  std::this_thread::sleep_for(200ms);
  client_->push(test::plugin("arith"));
  EXPECT_EQ(client_->apply(0, "mul", {2, 3}).value, Value(6));
  EXPECT_EQ(client_->query("ids").value.repr(), "[0]");
}

TEST_F(Cluster, AFloodOfBadMessagesIsAFewLogLinesNamingThePeer) {
  start(1);
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.connect(client_->info().endpoint("balanced"));
  net::Signer wrong(net::Signer::new_key());
  net::Envelope env;
  net::Header h;
  h.type = net::MsgType::ApplyRequest;
  h.msg_id = net::new_id();
  env.parts.push_back(net::encode_header(h));
  constexpr int kFlood = 5000;
  for (int i = 0; i < kFlood; ++i)
    net::send(s, wrong, env);
  // Served all along, and the flood is behind us once a task that follows it is answered.
  client_->push(test::plugin("arith"));
  EXPECT_EQ(client_->apply(0, "mul", {2, 3}).value, Value(6));
  std::this_thread::sleep_for(300ms);
  std::ifstream log(dir_ / "controller.log");
  int lines = 0, naming = 0;
  for (std::string line; std::getline(log, line);) {
    if (line.find("dropped a message") == std::string::npos) continue;
    ++lines;
    if (line.find("(from 127.0.0.1") != std::string::npos) ++naming;
  }
  EXPECT_GE(lines, 1);
  EXPECT_LE(lines, 20) << "a flood of " << kFlood << " bad messages is a few lines";
  EXPECT_EQ(naming, lines) << "each names the peer";
}

/// A TCP connection to `endpoint` ("tcp://HOST:PORT") that says nothing; -1 when refused.
int held_connection(const std::string& endpoint) {
  const auto colon = endpoint.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(endpoint.substr(colon + 1))));
  ::inet_pton(AF_INET, endpoint.substr(6, colon - 6).c_str(), &addr.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval limit{2, 0};  // connect gives up after this
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST_F(Cluster, AFloodOfHeldConnectionsIsRefusedAndTheControllerServesOn) {
  // A sanitized controller's guard thread runs several times slower than its I/O thread
  // accepts: at a limit this small its refusals can fall behind by more than the reserve.
  if (std::string_view(IPP_SANITIZER_FLAGS).size() > 0)
    GTEST_SKIP() << "needs an unsanitized controller (its guard keeps up with its accepts)";
  // The controller may hold 256 descriptors; the flood is 600 connections that never speak.
  controller_launcher_ = {"/usr/bin/prlimit", "--nofile=256:256"};
  start(1);
  client_->push(test::plugin("arith"));
  std::vector<int> flood;
  for (int i = 0; i < 600; ++i) {
    const int fd =
        held_connection(client_->info().endpoint(i % 2 == 0 ? "registration" : "direct"));
    if (fd >= 0) flood.push_back(fd);
  }
  EXPECT_EQ(flood.size(), 600u) << "connections over the limit are accepted and closed";
  // While the flood holds: tasks go on over the connections made before it.
  EXPECT_EQ(client_->apply(0, "mul", {2, 3}).value, Value(6));
  // A client that comes now connects to the task channels over the Unix socket, where an
  // accept without a descriptor would abort libzmq. It gets in, or is refused with a clear
  // error (a request on a connection refused after it was sent is lost).
  try {
    Client late(ClientOptions{.profile_dir = dir_.path(), .timeout = Duration(3000)});
    (void)late.ids();
    EXPECT_EQ(late[0].apply("mul", {4, 5}), Value(20));
  } catch (const ConnectionError&) {
  } catch (const TimeoutError&) {
  }
  for (const int fd : flood)
    ::close(fd);
  // The flood gone, everything works: the connections from before, and new clients.
  EXPECT_EQ(client_->apply(0, "mul", {3, 3}).value, Value(9));
  Client after(ClientOptions{.profile_dir = dir_.path(), .timeout = Duration(30000)});
  EXPECT_EQ(Value(after.ids()).repr(), "[0]");
  EXPECT_EQ(after[0].apply("mul", {4, 5}), Value(20));
  std::ifstream log(dir_ / "controller.log");
  int refusals = 0;
  for (std::string line; std::getline(log, line);) {
    if (line.find("refused a connection from 127.0.0.1:") != std::string::npos) ++refusals;
  }
  EXPECT_GE(refusals, 1) << "a flood past the limit is refused";
  EXPECT_LE(refusals, 20) << "in a few lines";
}

TEST_F(Cluster, ATaskDatabaseOnAFullDiskServesOnSaysSoAndCatchesUpWhenThereIsRoom) {
  if (::geteuid() != 0) GTEST_SKIP() << "a private tmpfs needs root";
  // The database on a 4 MiB tmpfs of the controller's own (a private mount namespace: it goes
  // with the controller), nearly filled by a file.
  const auto disk = dir_ / "disk";
  std::filesystem::create_directories(disk);
  controller_launcher_ = {"/usr/bin/unshare",
                          "-m",
                          "--propagation",
                          "private",
                          "/bin/sh",
                          "-c",
                          "mount -t tmpfs -o size=4m ipp-test-db '" + disk.string() +
                              "' && head -c 3900000 /dev/zero > '" + disk.string() +
                              "/filler' && exec \"$@\"",
                          "sh"};
  start(1, 2, {"--db-file", (disk / "tasks.db").string()});
  Client rc(ClientOptions{.profile_dir = dir_.path(), .timeout = Duration(30000)});
  rc.push_plugin(test::plugin("strings"));
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    AsyncResult r = rc[0].apply_async("upper", {std::string(40000, 'a')});
    EXPECT_EQ(r.get(30s).as_string().size(), 40000u) << "tasks are served all along";
    ids.push_back(r.msg_ids()[0]);
  }
  // Said in queue_status (and so in `cluster status`).
  Value status;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  do {
    status = rc.queue_status();
    if (status.as_map().count("task_db") != 0) break;
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(status.as_map().count("task_db"), 1u) << status.repr();
  EXPECT_EQ(status["task_db"]["ok"], Value(false));
  EXPECT_NE(status["task_db"]["error"].as_string().find("full"), std::string::npos)
      << status.repr();
  // Room again: the writes that waited are made, and the trouble is gone.
  const std::string rm = "nsenter -t " + std::to_string(controller_->pid()) + " -m rm '" +
                         (disk / "filler").string() + "'";
  ASSERT_EQ(std::system(rm.c_str()), 0);
  const auto caught_up = std::chrono::steady_clock::now() + 30s;
  while (rc.queue_status().as_map().count("task_db") != 0)
    ASSERT_LT(std::chrono::steady_clock::now(), caught_up) << rc.queue_status().repr();
  for (const auto& id : ids)
    EXPECT_EQ(rc.get_result(id, Duration(10000)).as_string(), std::string(40000, 'A')) << id;
}

/// Continues a paused process however the test ends.
struct Resume {
  test::Process& p;
  ~Resume() { p.signal(SIGCONT); }
};

/// The task database's record of `msg_id`: {"status", "engine"}.
Value recorded(Client& rc, const std::string& msg_id) {
  const Value rows =
      rc.db_query({DbCondition{"msg_id", "==", Value(msg_id)}}, {"status", "engine"});
  return rows.as_list().empty() ? Value() : rows.as_list()[0];
}

TEST_F(Cluster, AnEnginePausedPastItsHeartbeatLeavesEachTaskOneOutcome) {
  start(2, 1);
  Client rc(ClientOptions{.profile_dir = dir_.path(), .timeout = Duration(30000)});
  rc.push_plugin(test::test_plugin("sched"));
  auto wait_for_engines = [&](std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (rc.ids().size() != n) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "engines: " << rc.ids().size();
      std::this_thread::sleep_for(20ms);
    }
  };
  // A direct task, whose engine is paused past its heartbeat: its client is told the engine
  // died, and the database says so too, also once the engine came back and the task ended.
  {
    AsyncResult r = rc[0].apply_async("mul_slowly", {6, 7, 1.5});
    std::this_thread::sleep_for(300ms);
    test::Process& paused = engine_process(0);
    {
      Resume resume{paused};
      paused.signal(SIGSTOP);
      EXPECT_THROW((void)r.get(20s), EngineError);
    }
    wait_for_engines(2);              // it registered again
    std::this_thread::sleep_for(2s);  // the task it had would have ended by now
    EXPECT_EQ(recorded(rc, r.msg_ids()[0])["status"], Value("engine_died"));
  }
  // A balanced task with a retry: it runs again elsewhere, and that run's result is the one
  // its client and the database have.
  {
    AsyncResult r =
        rc.load_balanced_view().with({.retries = 1}).apply_async("mul_slowly", {6, 7, 1.5});
    std::int64_t first = -1;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (first < 0 && std::chrono::steady_clock::now() < deadline) {
      const Value q = rc.queue_status();
      for (const auto& [id, e] : q.as_map()) {
        if (e.kind() == Value::Kind::map && e["queue"].as_int() > 0) first = std::stoll(id);
      }
    }
    ASSERT_GE(first, 0);
    test::Process& paused = engine_process(first);
    {
      Resume resume{paused};
      paused.signal(SIGSTOP);
      EXPECT_EQ(r.get(20s), Value(42));
    }
    const std::int64_t second = r.metadata()[0].engine;
    EXPECT_NE(second, first);
    wait_for_engines(2);
    std::this_thread::sleep_for(2s);
    const Value row = recorded(rc, r.msg_ids()[0]);
    EXPECT_EQ(row["status"], Value("ok"));
    EXPECT_EQ(row["engine"], Value(second)) << "the retry's outcome, not the paused engine's";
  }
}

TEST_F(Cluster, APluginWhoseLoadingHangsIsAnsweredNamingTheEngines) {
  start(2, 2, {"--plugin-load-timeout-ms", "1500"});
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = client_->push(test::test_plugin("hang_at_load"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  ASSERT_TRUE(r.header.error.has_value());
  EXPECT_EQ(r.header.error->code, ErrorCode::plugin_load);
  for (const char* engine : {"engine 0", "engine 1"}) {
    EXPECT_NE(r.header.error->message.find(std::string(engine) +
                                           " did not finish loading the plugin within 1 s"),
              std::string::npos)
        << r.header.error->message;
  }
  EXPECT_FALSE(client_->query("ids").header.error.has_value()) << "the controller serves on";
  // Still loading at half as long again, each engine ends itself, saying why (a supervisor
  // would restart it; the controller no longer sends such an engine that plugin).
  for (int i = 0; i < 2; ++i) {
    const int code = engine_process(i).wait(20s);
    ASSERT_NE(code, -1) << "engine " << i << " still hangs";
    EXPECT_EQ(code, net::kEnginePluginLoadHung);
  }
}

TEST_F(Cluster, AnEngineKilledMidTaskFailsItsTaskAndOthersFinish) {
  start(2);
  client_->push(test::plugin("arith"));
  const std::string doomed = client_->send_apply(0, "wait_here", {30.0});
  const std::string fine = client_->send_apply(1, "wait_here", {0.5});
  std::this_thread::sleep_for(200ms);
  const pid_t survivor = engine_process(1).pid();
  engine_process(0).signal(SIGKILL);
  std::map<std::string, test::Reply> replies;
  for (int i = 0; i < 2; ++i) {
    auto r = client_->receive(false);
    replies[r.header.parent_id] = r;
  }
  ASSERT_TRUE(replies[doomed].header.error);
  EXPECT_EQ(replies[doomed].header.error->code, ErrorCode::engine);
  EXPECT_NE(replies[doomed].header.error->message.find("engine 0 died"), std::string::npos);
  ASSERT_FALSE(replies[fine].header.error);
  EXPECT_EQ(replies[fine].value.as_int(), survivor);
  wait_for_engines(1);
  EXPECT_EQ(client_->apply(-1, "mul", {2, 2}).value, Value(4));
}

TEST_F(Cluster, AnEngineKilledWithoutASupervisorIsDroppedWhenItsHeartbeatsStop) {
  start(2);  // engines started by the test: no supervisor tells the hub anything
  client_->push(test::plugin("arith"));
  const std::string doomed = client_->send_apply(0, "wait_here", {60.0});
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (client_->query("queue_status").value["0"]["queue"].as_int() == 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(5ms);
  }
  const auto killed = std::chrono::steady_clock::now();
  engine_process(0).signal(SIGKILL);
  const test::Reply r = client_->receive(false);
  const auto waited = std::chrono::steady_clock::now() - killed;
  RecordProperty(
      "detected_after_ms",
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()));
  EXPECT_EQ(r.header.parent_id, doomed);
  ASSERT_TRUE(r.header.error);
  EXPECT_EQ(r.header.error->code, ErrorCode::engine);
  EXPECT_EQ(r.header.error->message,
            "engine 0 died while running task 'wait_here' (stopped answering heartbeats)");
  wait_for_engines(1);
  EXPECT_EQ(client_->apply(1, "mul", {2, 2}).value, Value(4));
}

TEST_F(Cluster, RandomBytesOnRawSocketsDoNotHurt) {
  start(1);
  client_->push(test::plugin("arith"));
  auto engine_info = net::read_connection_file(dir_ / net::kEngineFile);
  std::vector<std::string> endpoints;
  for (const auto& [k, v] : client_->info().endpoints)
    endpoints.push_back(v);
  for (const auto& [k, v] : engine_info.endpoints)
    endpoints.push_back(v);
  std::mt19937 rng(7);
  for (const auto& ep : endpoints) {
    const int port = std::stoi(ep.substr(ep.rfind(':') + 1));
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << ep;
    std::vector<char> junk(4096);
    for (auto& c : junk)
      c = static_cast<char>(rng());
    (void)::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
  // And on the task channels' Unix sockets.
  std::vector<std::string> local;
  for (const auto& [k, v] : client_->info().local_endpoints)
    local.push_back(v);
  for (const auto& [k, v] : engine_info.local_endpoints)
    local.push_back(v);
  ASSERT_EQ(local.size(), 4u);
  for (const auto& ep : local) {
    const std::string path = ep.substr(std::string("ipc://").size());
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(path.size(), sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << ep;
    std::vector<char> junk(4096);
    for (auto& c : junk)
      c = static_cast<char>(rng());
    (void)::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(client_->apply(0, "mul", {2, 3}).value, Value(6));
  EXPECT_EQ(client_->apply(-1, "mul", {2, 4}).value, Value(8));
}

TEST_F(Cluster, EnginesExitWhenTheControllerIsGone) {
  start(0);
  engines_.push_back(std::make_unique<test::Process>(std::vector<std::string>{
      test::binary("ippengine"), "--profile-dir", dir_.path().string(), "--heartbeat-ms", "100",
      "--controller-timeout-ms", "500", "--log-level", "error"}));
  wait_for_engines(1);
  controller_->signal(SIGKILL);
  EXPECT_EQ(engines_[0]->wait(20s), net::kEngineLostController)
      << "its supervisor reads 83 as \"lost its controller\"";
}

TEST_F(Cluster, ShutdownStopsEngines) {
  start(2);
  client_->query("shutdown");
  EXPECT_EQ(controller_->wait(10s), 0);
  for (auto& e : engines_)
    EXPECT_EQ(e->wait(10s), 0);
}

}  // namespace
}  // namespace ipp
