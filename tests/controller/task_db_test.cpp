// The hub's task database on its own: records, queries, retention, purge, bad files.
#include <sys/stat.h>

#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/paths.hpp"
#include "task_db.hpp"

namespace ipp::hub {
namespace {

TaskRecord make(const std::string& id, std::int64_t submitted, const std::string& task = "mul",
                const std::string& status = "ok") {
  TaskRecord r;
  r.msg_id = id;
  r.client = "c1";
  r.queue = "direct";
  r.kind = "apply";
  r.task = task;
  r.plugin = "arith";
  r.target = 0;
  r.engine = 0;
  r.args = pack_parts({"root", std::string(100, 'a')});
  r.result = pack_parts({"result"});
  r.submitted = submitted;
  r.status = status;
  return r;
}

class TaskDbTest : public ::testing::TestWithParam<bool> {
 protected:
  TaskDb::Options options(std::int64_t records = 0, std::int64_t bytes = 0) {
    return {.file = GetParam() ? dir_ / "tasks.db" : std::filesystem::path(),
            .record_limit = records,
            .size_limit = bytes};
  }
  test::TempDir dir_;
};

TEST_P(TaskDbTest, StoresAndReadsBackEveryField) {
  TaskDb db(options());
  TaskRecord r = make("a", 10);
  r.error = ErrorRecord{};
  r.error->code = ErrorCode::remote;
  r.error->type = "std::domain_error";
  r.error->message = "division by zero";
  r.error->line = 2;
  r.resubmitted_from = "z";
  r.bind = "y";
  r.args_size = 12345;
  r.result_size = 7;
  db.put(r);
  db.flush();
  auto back = db.get("a");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->task, "mul");
  EXPECT_EQ(back->bind, "y");
  EXPECT_EQ(back->resubmitted_from, "z");
  EXPECT_EQ(back->args_size, 12345);
  EXPECT_EQ(back->result_size, 7);
  EXPECT_EQ(unpack_parts(back->args), (std::vector<std::string>{"root", std::string(100, 'a')}));
  ASSERT_TRUE(back->error);
  EXPECT_EQ(back->error->type, "std::domain_error");
  EXPECT_EQ(back->error->line, 2u);
  EXPECT_FALSE(db.get("missing"));
  // put replaces the whole record.
  r.status = "error";
  db.put(r);
  db.flush();
  EXPECT_EQ(db.get("a")->status, "error");
  EXPECT_EQ(db.count(), 1);
}

TEST_P(TaskDbTest, UpdateChangesTheOutcomeAndKeepsTheSubmission) {
  TaskDb db(options());
  TaskRecord r = make("a", 10, "mul", "pending");
  r.result.clear();
  r.bind = "y";
  r.args_size = 104;
  db.put(r);
  db.flush();
  // What the hub still knows of a queued task once its row is written.
  TaskRecord later;
  later.msg_id = "a";
  later.engine = 1;
  later.status = "running";
  db.update(later);
  db.flush();
  auto back = db.get("a");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->status, "running");
  EXPECT_EQ(back->engine, 1);
  EXPECT_EQ(back->plugin, "arith");  // an empty plugin in the update keeps the stored one
  EXPECT_EQ(back->client, "c1");
  EXPECT_EQ(back->bind, "y");
  EXPECT_EQ(back->submitted, 10);
  EXPECT_EQ(back->args_size, 104);
  EXPECT_EQ(unpack_parts(back->args), (std::vector<std::string>{"root", std::string(100, 'a')}));
  later.status = "ok";
  later.started = 20;
  later.completed = 30;
  later.received = 31;
  later.result = pack_parts({"result"});
  later.result_size = 6;
  db.update(later);
  later.msg_id = "gone";  // not in the database: nothing happens
  db.update(later);
  db.flush();
  back = db.get("a");
  EXPECT_EQ(back->status, "ok");
  EXPECT_EQ(back->completed, 30);
  EXPECT_EQ(unpack_parts(back->result), (std::vector<std::string>{"result"}));
  EXPECT_EQ(unpack_parts(back->args), (std::vector<std::string>{"root", std::string(100, 'a')}));
  EXPECT_FALSE(db.get("gone"));
  EXPECT_EQ(db.count(), 1);
}

TEST_P(TaskDbTest, QueriesCompareAndGlob) {
  TaskDb db(options());
  for (int i = 0; i < 10; ++i)
    db.put(make("m" + std::to_string(i), 100 + i, i % 2 ? "mul" : "arith.add",
                i < 3 ? "pending" : "ok"));
  db.flush();
  EXPECT_EQ(db.query({{"submitted", ">=", 105}}).size(), 5u);
  EXPECT_EQ(db.query({{"submitted", "<", 105}, {"task", "==", "mul"}}).size(), 2u);
  EXPECT_EQ(db.query({{"task", "!=", "mul"}}).size(), 5u);
  EXPECT_EQ(db.query({{"task", "glob", "arith.*"}}).size(), 5u);
  EXPECT_EQ(db.query({{"status", "in", Value::list({"pending", "error"})}}).size(), 3u);
  EXPECT_EQ(db.query({}, 4).size(), 4u);
  EXPECT_EQ(db.query({}).front().msg_id, "m0");  // oldest first
  EXPECT_THROW((void)db.query({{"nope", "==", 1}}), UsageError);
  EXPECT_THROW((void)db.query({{"task", "~", 1}}), UsageError);
  EXPECT_THROW((void)db.query({{"submitted", "glob", "1*"}}), UsageError);
  EXPECT_EQ(db.history(3), (std::vector<std::string>{"m7", "m8", "m9"}));
  EXPECT_EQ(db.history().size(), 10u);
}

TEST_P(TaskDbTest, RetentionCullsTheOldest) {
  {
    TaskDb db(options(5));
    for (int i = 0; i < 12; ++i)
      db.put(make("r" + std::to_string(i), i));
    db.flush();
    EXPECT_EQ(db.count(), 5);
    EXPECT_EQ(db.history().front(), "r7");
  }
  test::TempDir other;
  TaskDb db({.file = GetParam() ? other / "t.db" : std::filesystem::path(),
             .size_limit = 3 * static_cast<std::int64_t>(make("x", 0).args.size() +
                                                         make("x", 0).result.size())});
  for (int i = 0; i < 10; ++i)
    db.put(make("s" + std::to_string(i), i));
  db.flush();
  EXPECT_EQ(db.count(), 3);
  EXPECT_EQ(db.history().front(), "s7");
}

TEST_P(TaskDbTest, PurgeByIdByAgeOrAllButUnfinished) {
  TaskDb db(options());
  for (int i = 0; i < 6; ++i)
    db.put(make("p" + std::to_string(i), i * 10, "mul", i == 5 ? "running" : "ok"));
  db.flush();
  EXPECT_EQ(db.purge({"p0", "nothing"}), 1);
  EXPECT_EQ(db.purge_before(25), 2);  // p1, p2
  EXPECT_EQ(db.purge_all(), 2);       // p3, p4; p5 is still running
  EXPECT_EQ(db.history(), (std::vector<std::string>{"p5"}));
}

/// A hex id (one that may name a payload file) for `n`.
std::string hex_id(int n) {
  return fmt::format("{:032x}", n + 1);
}

/// A payload of parts, and the blob pack_parts() makes of it.
std::vector<Buffer> big_parts(std::size_t bytes, char fill) {
  return {Buffer::copy("root", 4), Buffer::copy(std::string(bytes, fill).data(), bytes)};
}
std::string packed(const std::vector<Buffer>& parts) {
  return pack_parts(parts);
}

std::size_t files_in(const std::filesystem::path& dir) {
  if (!std::filesystem::exists(dir)) return 0;
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir),
                                                std::filesystem::directory_iterator()));
}

TEST_P(TaskDbTest, LargePayloadsFromPartsReadBackWhereverTheyAreKept) {
  TaskDb db(options());
  TaskRecord r = make(hex_id(0), 1, "mul", "running");
  r.args.clear();
  r.args_parts = big_parts(200 << 10, 'a');
  r.args_size = (200 << 10) + 4;
  r.result.clear();
  db.put(r);
  db.flush();
  // Beside a file database the arguments are a file of their own; in memory, in the record.
  EXPECT_EQ(files_in(db.payload_dir()), GetParam() ? 1u : 0u);
  TaskRecord done;
  done.msg_id = r.msg_id;
  done.status = "ok";
  done.result_parts = big_parts(100 << 10, 'r');
  done.result_size = (100 << 10) + 4;
  db.update(done);
  db.flush();
  EXPECT_EQ(files_in(db.payload_dir()), GetParam() ? 2u : 0u);
  auto back = db.get(r.msg_id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->args, packed(r.args_parts));
  EXPECT_EQ(back->result, packed(done.result_parts));
  EXPECT_EQ(back->status, "ok");
  const auto rows = db.query({{"msg_id", "==", Value(r.msg_id)}});
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].args, back->args);
  EXPECT_EQ(rows[0].result, back->result);
  // Small payloads stay in the record even beside a file.
  TaskRecord small = make(hex_id(1), 2);
  db.put(small);
  db.flush();
  EXPECT_EQ(files_in(db.payload_dir()), GetParam() ? 2u : 0u);
  EXPECT_EQ(db.get(small.msg_id)->args, small.args);
}

TEST_P(TaskDbTest, PayloadFilesGoWithTheirRecords) {
  TaskDb db(options());
  auto put_big = [&](int n, std::int64_t submitted, const std::string& status = "ok") {
    TaskRecord r = make(hex_id(n), submitted, "mul", status);
    r.args.clear();
    r.result.clear();
    r.args_parts = big_parts(100 << 10, 'a');
    r.result_parts = big_parts(100 << 10, 'b');
    db.put(r);
  };
  for (int i = 0; i < 6; ++i)
    put_big(i, i * 10, i == 5 ? "running" : "ok");
  db.flush();
  const std::size_t per_record = GetParam() ? 2 : 0;
  EXPECT_EQ(files_in(db.payload_dir()), 6 * per_record);
  EXPECT_EQ(db.purge({hex_id(0)}), 1);
  EXPECT_EQ(files_in(db.payload_dir()), 5 * per_record);
  EXPECT_EQ(db.purge_before(25), 2);
  EXPECT_EQ(files_in(db.payload_dir()), 3 * per_record);
  EXPECT_EQ(db.purge_all(), 2);  // the running one stays, with its files
  EXPECT_EQ(files_in(db.payload_dir()), 1 * per_record);
  EXPECT_EQ(db.get(hex_id(5))->args, packed(big_parts(100 << 10, 'a')));
}

TEST_P(TaskDbTest, RetentionLimitsCountAndRemovePayloadFiles) {
  test::TempDir other;
  const std::int64_t per_record = 2 * packed_size(big_parts(100 << 10, 'a'));
  TaskDb by_count(
      {.file = GetParam() ? dir_ / "n.db" : std::filesystem::path(), .record_limit = 3});
  TaskDb by_size({.file = GetParam() ? other / "s.db" : std::filesystem::path(),
                  .size_limit = 3 * per_record});
  for (TaskDb* db : {&by_count, &by_size}) {
    for (int i = 0; i < 8; ++i) {
      TaskRecord r = make(hex_id(i), i);
      r.args.clear();
      r.result.clear();
      r.args_parts = big_parts(100 << 10, 'a');
      r.result_parts = big_parts(100 << 10, 'b');
      db->put(r);
      db->flush();
    }
    EXPECT_EQ(db->count(), 3);
    EXPECT_EQ(db->history().front(), hex_id(5));
    EXPECT_EQ(files_in(db->payload_dir()), GetParam() ? 6u : 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, TaskDbTest, ::testing::Values(true, false),
                         [](const auto& p) { return p.param ? "sqlite" : "memory"; });

TEST(TaskDbFile, SurvivesReopening) {
  test::TempDir dir;
  {
    TaskDb db({.file = dir / "tasks.db"});
    db.put(make("kept", 1));
    db.flush();
  }
  TaskDb again({.file = dir / "tasks.db"});
  EXPECT_TRUE(again.get("kept"));
}

TEST(TaskDbFile, PayloadFilesSurviveReopening) {
  test::TempDir dir;
  const auto parts = big_parts(300 << 10, 'z');
  {
    TaskDb db({.file = dir / "tasks.db"});
    TaskRecord r = make(hex_id(7), 1);
    r.args.clear();
    r.args_parts = parts;
    db.put(r);
    db.flush();
  }
  TaskDb again({.file = dir / "tasks.db"});
  EXPECT_EQ(again.get(hex_id(7))->args, packed(parts));
}

TEST(TaskDbFile, ACorruptFileIsAClearErrorAtOpen) {
  test::TempDir dir;
  std::ofstream(dir / "tasks.db") << std::string(8192, 'x');
  try {
    TaskDb db({.file = dir / "tasks.db"});
    FAIL() << "opened a corrupt file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tasks.db"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not a database"), std::string::npos) << e.what();
  }
}

TEST(TaskDbFile, ItsFilesAreReadableByTheirOwnerOnly) {
  test::TempDir dir;
  const auto parts = big_parts(300 << 10, 'p');
  {
    TaskDb db({.file = dir / "tasks.db"});
    TaskRecord r = make(hex_id(9), 1);
    r.args.clear();
    r.args_parts = parts;
    db.put(r);
    db.flush();
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
      if (!entry.is_regular_file()) continue;
      const auto perms = std::filesystem::status(entry.path()).permissions();
      EXPECT_EQ(perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
                std::filesystem::perms::none)
          << entry.path() << " holds user data";
    }
  }
}

TEST(TaskDbFile, ADamagedPageIsFoundAtOpen) {
  test::TempDir dir;
  {
    TaskDb db({.file = dir / "tasks.db"});
    for (int i = 0; i < 2000; ++i)
      db.put(make(hex_id(i), i));
    db.flush();
  }
  {
    // Overwrite a page in the middle of the file, as a bad disk would.
    std::fstream f(dir / "tasks.db", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(dir / "tasks.db") / 2));
    const std::string junk(4096, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  try {
    TaskDb db({.file = dir / "tasks.db"});
    FAIL() << "opened a damaged database without a word";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tasks.db"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("damaged"), std::string::npos) << e.what();
  }
}

TEST(TaskDbFile, AnUnwritablePlaceIsAClearErrorAtOpen) {
  test::TempDir dir;
  // A directory where the file should be.
  try {
    TaskDb db({.file = dir.path()});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path().string()), std::string::npos) << e.what();
  }
  // A place nobody may create files in (procfs refuses even root).
  EXPECT_THROW(TaskDb({.file = "/proc/ipp-tasks.db"}), Error);
  if (::geteuid() != 0) {  // file modes bind everyone but root
    { TaskDb db({.file = dir / "tasks.db"}); }
    ::chmod((dir / "tasks.db").c_str(), 0444);
    EXPECT_THROW(TaskDb({.file = dir / "tasks.db"}), Error);
  }
}

TEST(TaskDbPack, PartsRoundTripAndTruncationIsAnError) {
  const std::string blob = pack_parts({"a", "", std::string(70000, 'z')});
  EXPECT_EQ(unpack_parts(blob).size(), 3u);
  EXPECT_EQ(unpack_parts(blob)[2].size(), 70000u);
  EXPECT_THROW((void)unpack_parts(std::string_view(blob).substr(0, blob.size() - 1)),
               ProtocolError);
  EXPECT_TRUE(unpack_parts("").empty());
}

}  // namespace
}  // namespace ipp::hub
