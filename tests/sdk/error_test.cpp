// One error vocabulary: every code has one type name, records made from a code carry it, and
// rethrow() turns each record back into the exception its code names.

#include "ipp/error.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace ipp {
namespace {

constexpr ErrorCode kAll[] = {ErrorCode::unknown,
                              ErrorCode::protocol,
                              ErrorCode::plugin_load,
                              ErrorCode::task_not_found,
                              ErrorCode::ambiguous_task,
                              ErrorCode::argument,
                              ErrorCode::remote,
                              ErrorCode::engine,
                              ErrorCode::timeout,
                              ErrorCode::composite,
                              ErrorCode::usage,
                              ErrorCode::connection,
                              ErrorCode::name_error,
                              ErrorCode::aborted,
                              ErrorCode::cancelled,
                              ErrorCode::syntax,
                              ErrorCode::impossible_dependency,
                              ErrorCode::invalid_dependency,
                              ErrorCode::permission};

TEST(ErrorVocabulary, EveryCodeHasItsOwnTypeName) {
  std::set<std::string_view> names;
  for (const auto code : kAll) {
    const auto name = error_type_name(code);
    EXPECT_EQ(name.substr(0, 5), "ipp::") << to_string(code);
    EXPECT_TRUE(names.insert(name).second) << name << " names two codes";
  }
  EXPECT_EQ(error_type_name(ErrorCode::engine), "ipp::EngineError");
  EXPECT_EQ(error_type_name(ErrorCode::timeout), "ipp::TaskTimeout");
  EXPECT_EQ(error_type_name(ErrorCode::unknown), "ipp::Error");
}

TEST(ErrorVocabulary, ARecordTakesItsTypeFromItsCode) {
  const auto r = make_error_record(ErrorCode::aborted, "gone", "arith.mul", 4);
  EXPECT_EQ(r.code, ErrorCode::aborted);
  EXPECT_EQ(r.type, "ipp::TaskAborted");
  EXPECT_EQ(r.message, "gone");
  EXPECT_EQ(r.task, "arith.mul");
  EXPECT_EQ(r.engine, 4);
  EXPECT_EQ(r.describe(), "arith.mul on engine 4: ipp::TaskAborted: gone");
  const auto bare = make_error_record(ErrorCode::usage, "bad option");
  EXPECT_TRUE(bare.task.empty());
  EXPECT_EQ(bare.engine, -1);
}

template <typename E>
bool rethrows_as(ErrorCode code) {
  try {
    rethrow(make_error_record(code, "m"));
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

TEST(ErrorVocabulary, RethrowGivesTheExceptionTheCodeNames) {
  EXPECT_TRUE(rethrows_as<EngineError>(ErrorCode::engine));
  EXPECT_TRUE(rethrows_as<TaskTimeout>(ErrorCode::timeout));
  EXPECT_TRUE(rethrows_as<ConnectionError>(ErrorCode::connection));
  EXPECT_TRUE(rethrows_as<UsageError>(ErrorCode::usage));
  EXPECT_TRUE(rethrows_as<TaskAborted>(ErrorCode::aborted));
  EXPECT_TRUE(rethrows_as<TaskCancelled>(ErrorCode::cancelled));
  EXPECT_TRUE(rethrows_as<ImpossibleDependency>(ErrorCode::impossible_dependency));
  EXPECT_TRUE(rethrows_as<InvalidDependency>(ErrorCode::invalid_dependency));
  EXPECT_TRUE(rethrows_as<PermissionDenied>(ErrorCode::permission));
  EXPECT_TRUE(rethrows_as<RemoteError>(ErrorCode::argument));
  // A timeout record of another type (a client's own wait) is a TimeoutError, not TaskTimeout.
  ErrorRecord wait = make_error_record(ErrorCode::timeout, "waited");
  wait.type = "ipp::TimeoutError";
  try {
    rethrow(wait);
  } catch (const TaskTimeout&) {
    ADD_FAILURE() << "a plain timeout became a TaskTimeout";
  } catch (const TimeoutError&) {
  }
}

TEST(CompositeError, ManyFailuresAlikeAreOneLine) {
  std::vector<ErrorRecord> records;
  for (int i = 0; i < 5000; ++i)
    records.push_back(make_error_record(ErrorCode::cancelled, "cancelled", "arith.mul", i % 4));
  records.push_back(make_error_record(ErrorCode::engine, "engine 2 died", "arith.mul", 2));
  const CompositeError e(records);
  EXPECT_EQ(e.records().size(), 5001u);
  EXPECT_EQ(std::string(e.what()),
            "5001 tasks failed\n"
            "  arith.mul on engine 0: ipp::TaskCancelled: cancelled (and 4999 more like it)\n"
            "  arith.mul on engine 2: ipp::EngineError: engine 2 died");
}

TEST(CompositeError, ManyKindsAreCutAfterTen) {
  std::vector<ErrorRecord> records;
  for (int i = 0; i < 25; ++i)
    records.push_back(make_error_record(ErrorCode::remote, "failure " + std::to_string(i)));
  const std::string what = CompositeError(records).what();
  EXPECT_EQ(std::count(what.begin(), what.end(), '\n'), 11);
  EXPECT_NE(what.find("... and 15 more of 15 other kinds"), std::string::npos) << what;
}

}  // namespace
}  // namespace ipp
