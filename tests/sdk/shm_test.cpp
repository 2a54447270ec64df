// Shared memory for large message parts: segments, references, names and their owners, and
// what a message carries when its large parts go through shared memory.

#include "ipp/net/shm.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <numeric>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <zmq_addon.hpp>

#include "ipp/codec.hpp"
#include "ipp/error.hpp"
#include "ipp/net/envelope.hpp"
#include "support/paths.hpp"

namespace ipp::net {
namespace {

using namespace std::chrono_literals;

/// The names in `dir` other than the token and owner files.
std::set<std::string> parts_in(const std::filesystem::path& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name != "token" && name != "owner") out.insert(name);
  }
  return out;
}

class SharedMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_ = SharedMemory::create(dir_.path());
    shm_ = SharedMemory::open(dir_.path(), token_);
    ASSERT_NE(shm_, nullptr);
  }
  void TearDown() override { SharedMemory::stop_allocating(); }

  /// `n` bytes counting up from `start`, in a heap buffer.
  static Buffer bytes(std::size_t n, unsigned start = 0) {
    std::vector<unsigned char> v(n);
    std::iota(v.begin(), v.end(), static_cast<unsigned char>(start));
    return Buffer::adopt(std::move(v));
  }

  test::TempDir dir_;
  std::string token_;
  const SharedMemory* shm_ = nullptr;
};

TEST_F(SharedMemoryTest, TheDirectoryIsTheOwnersAloneAndNeedsItsToken) {
  struct stat st {};
  ASSERT_EQ(::stat(dir_.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(SharedMemory::create(dir_.path()), token_);      // again: the same token
  EXPECT_EQ(SharedMemory::open(dir_.path(), token_), shm_);  // one instance per directory
  EXPECT_EQ(SharedMemory::open(dir_.path(), "not-the-token"), nullptr);
  EXPECT_EQ(SharedMemory::open(dir_.path() / "missing", token_), nullptr);
}

TEST_F(SharedMemoryTest, APartWrittenOutIsMappedInPlaceAndItsFileGoesWithTheLastBuffer) {
  const Buffer part = bytes(SharedMemory::kThreshold + 5, 3);
  const auto ref = shm_->export_part(part);
  ASSERT_TRUE(ref);
  const auto in_flight = parts_in(dir_.path());
  ASSERT_EQ(in_flight.size(), 1u);
  EXPECT_EQ(in_flight.begin()->substr(0, 2), "t-");  // held by the message
  {
    const Buffer got = shm_->import_part(*ref);
    ASSERT_EQ(got.size(), part.size());
    EXPECT_EQ(std::memcmp(got.data(), part.data(), part.size()), 0);
    const auto held = parts_in(dir_.path());
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held.begin()->substr(0, 2 + std::to_string(::getpid()).size() + 1),
              "h-" + std::to_string(::getpid()) + "-");  // now this process's own
    const Buffer half = got.slice(got.size() / 2, 10);   // a slice keeps it too
    (void)half;
  }
  EXPECT_TRUE(parts_in(dir_.path()).empty());
  // A reference is taken once: a second import finds nothing and says what is missing.
  try {
    (void)shm_->import_part(*ref);
    FAIL() << "a reference was taken twice";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("is not there"), std::string::npos) << e.what();
  }
}

TEST_F(SharedMemoryTest, LargeBuffersAreAllocatedThereAndSentWithoutACopy) {
  std::byte* out = nullptr;
  const Buffer big = Buffer::allocate(SharedMemory::kThreshold * 2, &out);
  for (std::size_t i = 0; i < big.size(); ++i)
    out[i] = static_cast<std::byte>(i * 7);
  ASSERT_EQ(parts_in(dir_.path()).size(), 1u);  // the segment it lives in
  const Buffer small = Buffer::allocate(64, &out);
  EXPECT_EQ(parts_in(dir_.path()).size(), 1u);  // small ones stay on the heap
  // A slice of it goes out under a new name for the same file (a link, not a copy).
  const Buffer slice = big.slice(1000, SharedMemory::kThreshold);
  const auto ref = shm_->export_part(slice);
  ASSERT_TRUE(ref);
  ASSERT_EQ(parts_in(dir_.path()).size(), 2u);
  struct stat a {
  }, b{};
  const auto names = parts_in(dir_.path());
  ASSERT_EQ(::stat((dir_.path() / *names.begin()).c_str(), &a), 0);
  ASSERT_EQ(::stat((dir_.path() / *names.rbegin()).c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  const Buffer got = shm_->import_part(*ref);
  ASSERT_EQ(got.size(), slice.size());
  EXPECT_EQ(std::memcmp(got.data(), slice.data(), slice.size()), 0);
  EXPECT_EQ(got.data()[0], static_cast<std::byte>(1000 * 7));
}

TEST_F(SharedMemoryTest, LargeBuffersGoToTheDirectoryOpenedLastOfThoseStillUsed) {
  // A second cluster's client in the same process, then gone: large buffers go back to the
  // first directory, not to the heap (and not to a directory whose cluster may be gone).
  test::TempDir other;
  const SharedMemory* second = SharedMemory::open(other.path(), SharedMemory::create(other.path()));
  ASSERT_NE(second, nullptr);
  std::byte* out = nullptr;
  const Buffer in_second = Buffer::allocate(SharedMemory::kThreshold, &out);
  EXPECT_EQ(parts_in(other.path()).size(), 1u);
  EXPECT_EQ(parts_in(dir_.path()).size(), 0u);
  SharedMemory::release(second);
  const Buffer in_first = Buffer::allocate(SharedMemory::kThreshold, &out);
  EXPECT_EQ(parts_in(dir_.path()).size(), 1u);
  EXPECT_EQ(parts_in(other.path()).size(), 1u);
  // Opened twice, released once: still in use.
  ASSERT_EQ(SharedMemory::open(dir_.path(), token_), shm_);
  SharedMemory::release(shm_);
  const Buffer again = Buffer::allocate(SharedMemory::kThreshold, &out);
  EXPECT_EQ(parts_in(dir_.path()).size(), 2u);
  // No directory in use: the heap.
  SharedMemory::release(shm_);
  const Buffer on_heap = Buffer::allocate(SharedMemory::kThreshold, &out);
  EXPECT_EQ(parts_in(dir_.path()).size(), 2u);
  EXPECT_EQ(parts_in(other.path()).size(), 1u);
}

TEST_F(SharedMemoryTest, LargeFilesAreKeptForTheNextPartOfTheirSizeThenSweptAway) {
  constexpr std::size_t kBig = std::size_t{8} << 20;
  {
    std::byte* out = nullptr;
    const Buffer big = Buffer::allocate(kBig, &out);
    std::memset(out, 1, kBig);
  }
  auto names = parts_in(dir_.path());
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(*names.begin(),
            fmt::format("p-{}-", kBig) + names.begin()->substr(names.begin()->size() - 32));
  // The next large part of about that size is written into it: still one file.
  const Buffer part = bytes(kBig - 1000, 9);
  const auto ref = shm_->export_part(part);
  ASSERT_TRUE(ref);
  names = parts_in(dir_.path());
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names.begin()->substr(0, 2), "t-");
  {
    const Buffer got = shm_->import_part(*ref);
    ASSERT_EQ(got.size(), part.size());  // cut to the part's size
    EXPECT_EQ(std::memcmp(got.data(), part.data(), part.size()), 0);
  }
  ASSERT_EQ(parts_in(dir_.path()).size(), 1u);  // back in the pool
  // Small files are not kept; a shared one is not either while someone else holds it.
  {
    std::byte* out = nullptr;
    const Buffer small = Buffer::allocate(SharedMemory::kThreshold, &out);
    (void)small;
  }
  EXPECT_EQ(parts_in(dir_.path()).size(), 1u);
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(SharedMemory::sweep(dir_.path(), 0s), 1u);
  EXPECT_TRUE(parts_in(dir_.path()).empty());
}

/// The pages of `dir`'s files this process maps writable, by address.
std::set<std::string> writable_mappings_of(const std::filesystem::path& dir) {
  std::set<std::string> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find(dir.string()) != std::string::npos && line.find(" rw-s ") != std::string::npos)
      out.insert(line.substr(0, line.find(' ')));
  }
  return out;
}

TEST_F(SharedMemoryTest, AWriterKeepsItsMappingOfAPooledFileAndWritesTheNextPartThroughIt) {
  SharedMemory::trim(0s);
  constexpr std::size_t kBig = std::size_t{8} << 20;
  // First out: a new file, written without a mapping.
  const auto first = shm_->export_part(bytes(kBig, 1));
  ASSERT_TRUE(first);
  (void)shm_->import_part(*first);  // taken and dropped: back in the pool
  ASSERT_EQ(parts_in(dir_.path()).size(), 1u);
  EXPECT_EQ(SharedMemory::kept_mappings().count, 0u);
  // Written again through a new mapping, which the writer keeps.
  const auto second = shm_->export_part(bytes(kBig, 2));
  ASSERT_TRUE(second);
  EXPECT_EQ(SharedMemory::kept_mappings().count, 1u);
  EXPECT_EQ(SharedMemory::kept_mappings().bytes, kBig);
  const auto mapped = writable_mappings_of(dir_.path());
  ASSERT_EQ(mapped.size(), 1u);
  {
    const Buffer got = shm_->import_part(*second);
    const Buffer want = bytes(kBig, 2);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), kBig), 0);
  }
  // The third part of about that size goes into the same file through the same mapping, also
  // a smaller one (the file is cut to it; the mapping reaches past its end).
  const auto reused = SharedMemory::kept_mappings().reused;
  const Buffer third = bytes(kBig - 12345, 3);
  const auto ref = shm_->export_part(third);
  ASSERT_TRUE(ref);
  EXPECT_EQ(SharedMemory::kept_mappings().reused, reused + 1);
  EXPECT_EQ(writable_mappings_of(dir_.path()), mapped);
  const Buffer got = shm_->import_part(*ref);
  ASSERT_EQ(got.size(), third.size());
  EXPECT_EQ(std::memcmp(got.data(), third.data(), third.size()), 0);
}

TEST_F(SharedMemoryTest, APooledFileThisProcessKeepsAMappingOfIsTakenFirst) {
  SharedMemory::trim(0s);
  constexpr std::size_t kBig = std::size_t{8} << 20;
  constexpr std::size_t kBigger = std::size_t{10} << 20;
  const auto a = shm_->export_part(bytes(kBigger, 1));  // two new files
  const auto b = shm_->export_part(bytes(kBig, 2));
  ASSERT_TRUE(a && b);
  (void)shm_->import_part(*a);                                     // the larger in the pool
  (void)shm_->import_part(*shm_->export_part(bytes(kBigger, 3)));  // written through a mapping
  (void)shm_->import_part(*b);                                     // both in the pool now
  ASSERT_EQ(parts_in(dir_.path()).size(), 2u);
  ASSERT_EQ(SharedMemory::kept_mappings().count, 1u);
  // Both hold a part of kBig; the smaller has no mapping here, the larger one has.
  const auto reused = SharedMemory::kept_mappings().reused;
  const Buffer part = bytes(kBig, 4);
  const Buffer got = shm_->import_part(*shm_->export_part(part));
  EXPECT_EQ(SharedMemory::kept_mappings().reused, reused + 1);
  EXPECT_EQ(std::memcmp(got.data(), part.data(), kBig), 0);
}

TEST_F(SharedMemoryTest, AKeptMappingIsNeverWrittenWhileAnotherHoldsItsFile) {
  SharedMemory::trim(0s);
  constexpr std::size_t kBig = std::size_t{8} << 20;
  (void)shm_->import_part(*shm_->export_part(bytes(kBig, 1)));  // a file in the pool
  const auto ref = shm_->export_part(bytes(kBig, 2));           // through a kept mapping
  ASSERT_TRUE(ref);
  ASSERT_EQ(SharedMemory::kept_mappings().count, 1u);
  const Buffer held = shm_->import_part(*ref);  // a receiver holds that file now
  // The next parts of that size find no file in the pool: new ones, the held one untouched.
  for (unsigned i = 3; i < 6; ++i) {
    const auto other = shm_->export_part(bytes(kBig, i));
    ASSERT_TRUE(other);
    const Buffer got = shm_->import_part(*other);
    EXPECT_EQ(got.data()[7], static_cast<std::byte>(i + 7));
  }
  const Buffer want = bytes(kBig, 2);
  EXPECT_EQ(std::memcmp(held.data(), want.data(), kBig), 0);
}

TEST_F(SharedMemoryTest, AllocatedBuffersKeepTheirMappingForTheirFileComingBack) {
  // An engine's result: allocated here, sent by a link, dropped here while the receiver holds
  // it; the receiver lets go (the file goes to the pool) and the next result of that size is
  // allocated in the same file through the mapping kept.
  SharedMemory::trim(0s);
  constexpr std::size_t kBig = std::size_t{6} << 20;
  std::optional<Buffer> received;
  {
    std::byte* out = nullptr;
    const Buffer result = Buffer::allocate(kBig, &out);
    std::memset(out, 0x11, kBig);
    const auto ref = shm_->export_part(result);
    ASSERT_TRUE(ref);
    received = shm_->import_part(*ref);
  }
  EXPECT_EQ(SharedMemory::kept_mappings().count, 1u);  // its file still held by the receiver
  EXPECT_EQ(received->data()[kBig - 1], std::byte{0x11});
  received.reset();  // now in the pool
  const auto reused = SharedMemory::kept_mappings().reused;
  std::byte* out = nullptr;
  const Buffer next = Buffer::allocate(kBig, &out);
  EXPECT_EQ(SharedMemory::kept_mappings().reused, reused + 1);
  EXPECT_EQ(SharedMemory::kept_mappings().count, 0u);  // the new buffer's now
  std::memset(out, 0x22, kBig);
  const Buffer got = shm_->import_part(*shm_->export_part(next));
  EXPECT_EQ(got.data()[0], std::byte{0x22});
  EXPECT_EQ(got.data()[kBig - 1], std::byte{0x22});
}

TEST_F(SharedMemoryTest, KeptMappingsGoWithTheirFilesTheirTimeAndTheirDirectory) {
  SharedMemory::trim(0s);
  constexpr std::size_t kBig = std::size_t{8} << 20;
  (void)shm_->import_part(*shm_->export_part(bytes(kBig, 1)));
  (void)shm_->import_part(*shm_->export_part(bytes(kBig, 2)));  // kept, its file in the pool
  ASSERT_EQ(SharedMemory::kept_mappings().count, 1u);
  SharedMemory::trim(1h);  // its file has a name: kept
  EXPECT_EQ(SharedMemory::kept_mappings().count, 1u);
  // The pool's time runs out: the mapping would be all that holds the file's memory.
  std::this_thread::sleep_for(1100ms);
  ASSERT_EQ(SharedMemory::sweep(dir_.path(), 0s), 1u);
  SharedMemory::trim(1h);
  EXPECT_EQ(SharedMemory::kept_mappings().count, 0u);
  EXPECT_TRUE(writable_mappings_of(dir_.path()).empty());
  // Unused for longer than asked.
  (void)shm_->import_part(*shm_->export_part(bytes(kBig, 1)));
  (void)shm_->import_part(*shm_->export_part(bytes(kBig, 2)));
  ASSERT_EQ(SharedMemory::kept_mappings().count, 1u);
  std::this_thread::sleep_for(20ms);
  SharedMemory::trim(10ms);
  EXPECT_EQ(SharedMemory::kept_mappings().count, 0u);
  // A directory no longer used (its client closed): its kept mappings go.
  test::TempDir other;
  const SharedMemory* second = SharedMemory::open(other.path(), SharedMemory::create(other.path()));
  ASSERT_NE(second, nullptr);
  (void)second->import_part(*second->export_part(bytes(kBig, 1)));
  (void)second->import_part(*second->export_part(bytes(kBig, 2)));
  (void)shm_->import_part(*shm_->export_part(bytes(kBig, 1)));
  (void)shm_->import_part(*shm_->export_part(bytes(kBig, 2)));
  ASSERT_EQ(SharedMemory::kept_mappings().count, 2u);
  SharedMemory::release(second);
  EXPECT_EQ(SharedMemory::kept_mappings().count, 1u);
  EXPECT_TRUE(writable_mappings_of(other.path()).empty());
  EXPECT_EQ(writable_mappings_of(dir_.path()).size(), 1u);
}

TEST_F(SharedMemoryTest, APartOfManySlicesIsCopiedWholeIntoANewFileAndIntoAPooledOne) {
  // From 64 MiB a part is copied into its file by several threads, slice by slice, through a
  // mapping its sender keeps: for a new file too, whose pages are made first.
  SharedMemory::trim(0s);
  constexpr std::size_t kHuge = (std::size_t{96} << 20) + 4097;  // not a whole number of pages
  {
    const Buffer part = bytes(kHuge, 1);
    const Buffer got = shm_->import_part(*shm_->export_part(part));
    ASSERT_EQ(got.size(), kHuge);
    EXPECT_EQ(std::memcmp(got.data(), part.data(), kHuge), 0);
    EXPECT_EQ(SharedMemory::kept_mappings().count, 1u);
  }
  const auto reused = SharedMemory::kept_mappings().reused;
  const Buffer part = bytes(kHuge, 5);
  const auto ref = shm_->export_part(part);  // into the same file, through the same mapping
  ASSERT_TRUE(ref);
  EXPECT_EQ(SharedMemory::kept_mappings().reused, reused + 1);
  const Buffer got = shm_->import_part(*ref);
  ASSERT_EQ(got.size(), kHuge);
  EXPECT_EQ(std::memcmp(got.data(), part.data(), kHuge), 0);
  // A large buffer allocated in a new file: its pages are there, written and sent whole.
  std::byte* out = nullptr;
  const Buffer big = Buffer::allocate(kHuge, &out);
  std::memset(out, 0x5a, kHuge);
  const Buffer sent = shm_->import_part(*shm_->export_part(big));
  EXPECT_EQ(sent.data()[0], std::byte{0x5a});
  EXPECT_EQ(sent.data()[kHuge - 1], std::byte{0x5a});
}

TEST_F(SharedMemoryTest, PartsAndBuffersTheTmpfsHasNoRoomForGoElsewhereWithoutASignal) {
  // A tmpfs of 32 MiB of its own, in a mount namespace of a child process (root only): parts
  // that do not fit go through the socket (export_part gives nullopt) and buffers to the heap,
  // where a write through a mapping of pages that cannot be had would have been a SIGBUS.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs";
  test::TempDir mnt;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", mnt.path().c_str(), "tmpfs", 0, "size=32m") != 0)
      ::_exit(77);
    const auto dir = mnt / "cluster";
    const SharedMemory* small = SharedMemory::open(dir, SharedMemory::create(dir));
    if (small == nullptr) ::_exit(2);
    constexpr std::size_t kHuge = std::size_t{96} << 20;
    if (small->export_part(bytes(kHuge, 1))) ::_exit(3);  // no room: through the socket
    if (parts_in(dir).size() != 0) ::_exit(4);            // and nothing left behind
    const Buffer fits = bytes(std::size_t{8} << 20, 2);   // room for this one
    const auto ref = small->export_part(fits);
    if (!ref) ::_exit(5);
    const Buffer got = small->import_part(*ref);
    if (std::memcmp(got.data(), fits.data(), fits.size()) != 0) ::_exit(6);
    std::byte* out = nullptr;
    const Buffer big = Buffer::allocate(kHuge, &out);  // on the heap
    std::memset(out, 1, kHuge);
    if (parts_in(dir).size() != 1) ::_exit(7);  // the part above only
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "no mount namespace here";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(SharedMemoryTest, MalformedReferencesAreRefused) {
  SharedMemory::Ref ref{};
  EXPECT_THROW((void)shm_->import_part(std::span<const std::byte>(ref).first(10)), ProtocolError);
  EXPECT_THROW((void)shm_->import_part(ref), ProtocolError);  // no such file
  // A real file but bytes past its end: refused, and the file is not left behind.
  const auto good = shm_->export_part(bytes(SharedMemory::kThreshold));
  ASSERT_TRUE(good);
  SharedMemory::Ref past = *good;
  past[24] = std::byte{0xff};  // length
  past[25] = std::byte{0xff};
  past[26] = std::byte{0xff};
  EXPECT_THROW((void)shm_->import_part(past), ProtocolError);
  EXPECT_TRUE(parts_in(dir_.path()).empty());
}

TEST_F(SharedMemoryTest, SweepRemovesPartsInFlightTooLongAndThoseOfDeadProcesses) {
  const auto lost = shm_->export_part(bytes(SharedMemory::kThreshold));
  ASSERT_TRUE(lost);
  std::ofstream(dir_.path() / "h-999999999-00000000000000000000000000000000") << "x";
  std::byte* out = nullptr;
  const Buffer mine = Buffer::allocate(SharedMemory::kThreshold, &out);  // alive: kept
  EXPECT_EQ(SharedMemory::sweep(dir_.path(), 3600s), 1u);                // the dead process's
  EXPECT_EQ(parts_in(dir_.path()).size(), 2u);
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(SharedMemory::sweep(dir_.path(), 0s), 1u);  // the lost message's
  const auto left = parts_in(dir_.path());
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left.begin()->substr(0, 2), "h-");
}

TEST_F(SharedMemoryTest, DirectoriesOfControllersThatDiedAreRemoved) {
  test::TempDir root;
  const auto dead = root / "ipp-dead";
  const auto alive = root / "ipp-alive";
  std::filesystem::create_directories(dead);
  std::filesystem::create_directories(alive);
  std::ofstream(dead / "owner") << 999999999;
  std::ofstream(alive / "owner") << ::getpid();
  std::filesystem::create_directories(root / "other");
  EXPECT_EQ(SharedMemory::remove_abandoned(root.path(), 3600s), 0u);  // not idle long enough
  EXPECT_EQ(SharedMemory::remove_abandoned(root.path(), 0s), 1u);
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(alive));
  EXPECT_TRUE(std::filesystem::exists(root / "other"));
}

// ---- messages ---------------------------------------------------------------------------------

class SharedEnvelopeTest : public SharedMemoryTest {
 protected:
  void SetUp() override {
    SharedMemoryTest::SetUp();
    router_.bind("tcp://127.0.0.1:*");
    dealer_.connect(router_.get(zmq::sockopt::last_endpoint));
    router_.set(zmq::sockopt::rcvtimeo, 5000);
  }
  zmq::context_t ctx_;
  zmq::socket_t router_{ctx_, zmq::socket_type::router};
  zmq::socket_t dealer_{ctx_, zmq::socket_type::dealer};
  Signer signer_{Signer::new_key()};
};

TEST_F(SharedEnvelopeTest, LargePartsGoThroughSharedMemoryWhenThePeerMapsIt) {
  const Payload payload =
      encode(std::vector<double>(100000, 2.5));  // 800 kB: a side frame over the threshold
  ASSERT_EQ(payload.frames.size(), 1u);
  Envelope out;
  out.parts = {Buffer::copy("header", 6), payload.root, payload.frames[0]};
  ASSERT_TRUE(send(dealer_, signer_, out, false, {shm_, true}));
  auto in = recv(router_, signer_, zmq::recv_flags::none, shm_);
  ASSERT_TRUE(in);
  EXPECT_TRUE(in->peer_maps);
  EXPECT_TRUE(in->unreadable.empty());
  EXPECT_EQ(decode(Payload{in->parts[1], {in->parts[2]}}), decode(payload));
  EXPECT_EQ(parts_in(dir_.path()).size(), 1u);  // the receiver's mapping
  // Without a peer that maps it, the same part goes through the socket.
  ASSERT_TRUE(send(dealer_, signer_, out, false, {shm_, false}));
  auto inline_in = recv(router_, signer_, zmq::recv_flags::none, shm_);
  ASSERT_TRUE(inline_in);
  EXPECT_EQ(decode(Payload{inline_in->parts[1], {inline_in->parts[2]}}), decode(payload));
  in.reset();
  EXPECT_TRUE(parts_in(dir_.path()).empty());
}

TEST_F(SharedEnvelopeTest, APartThatIsGoneMakesTheMessageUnreadableNotTheSocket) {
  Envelope out;
  out.parts = {Buffer::copy("header", 6), bytes(SharedMemory::kThreshold)};
  ASSERT_TRUE(send(dealer_, signer_, out, false, {shm_, true}));
  for (const auto& name : parts_in(dir_.path()))
    std::filesystem::remove(dir_.path() / name);  // taken away in flight
  auto in = recv(router_, signer_, zmq::recv_flags::none, shm_);
  ASSERT_TRUE(in);
  EXPECT_NE(in->unreadable.find("is not there"), std::string::npos) << in->unreadable;
  EXPECT_EQ(in->parts.at(0).size(), 6u);  // the header still reads
  EXPECT_TRUE(in->parts.at(1).empty());
  // A process that does not map shared memory says so for such a part.
  ASSERT_TRUE(send(dealer_, signer_, out, false, {shm_, true}));
  auto unmapped = recv(router_, signer_);  // a connection without shared memory
  ASSERT_TRUE(unmapped);
  EXPECT_NE(unmapped->unreadable.find("does not map"), std::string::npos) << unmapped->unreadable;
  // The mask is signed: flipping it is a bad signature, and the socket goes on.
  ASSERT_TRUE(send(dealer_, signer_, out, false, {shm_, false}));
  std::vector<zmq::message_t> frames;
  ASSERT_TRUE(zmq::recv_multipart(router_, std::back_inserter(frames)));
  ASSERT_EQ(frames.size(), 6u);  // id, "", tag, signature, header, part
  zmq::message_t sig(frames[3].size() + 1);
  std::memcpy(sig.data(), frames[3].data(), frames[3].size());
  static_cast<unsigned char*>(sig.data())[frames[3].size()] = 0x02;  // "part 1 is a reference"
  frames[3] = std::move(sig);
  for (std::size_t i = 1; i < frames.size(); ++i)
    dealer_.send(frames[i],
                 i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  EXPECT_THROW((void)recv(router_, signer_), ProtocolError);
}

}  // namespace
}  // namespace ipp::net
