// Large arrays through shared memory on one host: values arrive whole in both directions,
// an engine that does not map it still gets the same values through the sockets, the files
// go once their values are gone, the hub still records what it keeps, and a part that is
// missing gives an error naming it.

#include <cstring>
#include <numeric>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "ipp/client.hpp"
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

}  // namespace
}  // namespace ipp
