// A task's record apart from the database: payload parts packed into one blob and back, the
// files payloads are kept in, and the record as clients see it.

#include "task_record.hpp"

#include <gtest/gtest.h>

#include "payload_file.hpp"
#include "support/paths.hpp"

namespace ipp::hub {
namespace {

TEST(TaskRecord, PartsSurvivePackingWithEmptyAndLargeOnes) {
  const std::vector<std::string> parts{"root", "", std::string(300000, 'q'), "x"};
  std::vector<std::string_view> views(parts.begin(), parts.end());
  const std::string blob = pack_parts(views);
  EXPECT_EQ(unpack_parts(blob), parts);
  std::vector<Buffer> buffers;
  for (const auto& p : parts)
    buffers.push_back(Buffer::copy(p.data(), p.size()));
  EXPECT_EQ(pack_parts(buffers), blob);
  EXPECT_EQ(packed_size(buffers), static_cast<std::int64_t>(blob.size()));
  EXPECT_TRUE(unpack_parts("").empty());
}

TEST(TaskRecord, ATruncatedBlobIsAProtocolError) {
  const std::string blob = pack_parts(std::vector<std::string_view>{"hello", "world"});
  for (std::size_t n = 1; n < blob.size(); ++n) {
    if (n == 13) continue;  // exactly the first part: a whole blob of one part
    EXPECT_THROW((void)unpack_parts(std::string_view(blob).substr(0, n)), ProtocolError) << n;
  }
}

TEST(TaskRecord, PartLengthsAreLittleEndian) {
  const auto len = part_length(0x0102030405060708ULL);
  EXPECT_EQ(static_cast<unsigned char>(len[0]), 0x08);
  EXPECT_EQ(static_cast<unsigned char>(len[7]), 0x01);
}

TEST(TaskRecord, ClientsSeeTheFieldsAndWhetherPayloadsWereKept) {
  TaskRecord r;
  r.msg_id = "m";
  r.task = "mul";
  r.status = "error";
  r.error = make_error_record(ErrorCode::engine, "engine 1 died", "arith.mul", 1);
  r.args_size = 10;  // but not kept
  const Value v = to_value(r);
  EXPECT_EQ(v["msg_id"], Value("m"));
  EXPECT_EQ(v["error"]["type"], Value("ipp::EngineError"));
  EXPECT_EQ(v["error"]["description"],
            Value("arith.mul on engine 1: ipp::EngineError: engine 1 died"));
  EXPECT_FALSE(v.as_map().contains("payloads_kept"));
  const Value full = to_value(r, true);
  EXPECT_EQ(full["args_bytes"], Value(10));
  EXPECT_EQ(full["payloads_kept"], Value(false));
}

TEST(PayloadFile, WrittenFromPartsItReadsBackAsTheirBlob) {
  test::TempDir dir;
  const std::vector<Buffer> parts{Buffer::copy("ab", 2), Buffer::copy("", 0)};
  write_file(dir / "p", parts);
  EXPECT_EQ(read_file(dir / "p"), pack_parts(parts));
  write_file(dir / "q", std::string_view("plain"));
  EXPECT_EQ(read_file(dir / "q"), "plain");
  EXPECT_FALSE(read_file(dir / "missing").has_value());
  try {
    write_file(dir / "no-such-dir" / "f", std::string_view("x"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot write"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ipp::hub
