#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ipp/net/header.hpp"
#include "log_limiter.hpp"
#include "task_db.hpp"
#include "traffic.hpp"

namespace ipp::ctrl {

/// What a traffic copy says of an engine's load: a task given to it, or answered by it. The
/// hub's engine registry keeps the counts.
struct EngineLoadChange {
  enum class Kind : std::uint8_t { dispatched, answered };
  Kind kind = Kind::dispatched;
  std::int64_t engine = -1;
  net::TaskId task;
};

/// Turns the schedulers' copies of traffic into task-database rows, off the path of execution.
///
/// Writes wait for the next flush, by msg_id: a task submitted, dispatched and answered within
/// one flush is one INSERT of its final row; a task written before is updated in place. Nothing
/// of a task stays here once written, so a queued task costs the hub nothing while it waits.
/// Copies are taken in batches and recorded a bounded number at a time, so that the hub serves
/// registrations and queries while a backlog drains.
///
///     HubRecorder rec(db, {.max_payload = 64 << 20}, plugin_of);
///     rec.take(feed);
///     std::vector<EngineLoadChange> loads;
///     while (rec.record_some(4096, 50ms, loads)) ...
///     if (rec.flush_due(now)) rec.flush();
///
/// Not thread-safe: the hub's thread owns it.
class HubRecorder {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    /// Arguments or results larger than this are recorded by size only.
    std::int64_t max_payload = std::int64_t{64} << 20;
    /// Debugging: sleep this long per record (a slow hub, for tests and benchmarks).
    std::chrono::microseconds delay{0};
  };
  /// The plugin (name, hash) a task name refers to, as far as the hub knows ({} when unknown).
  using PluginOf = std::function<std::pair<std::string, std::string>(const std::string& task)>;

  /// A flush is due this long after the last one when writes wait, or after kFlushAfter writes.
  static constexpr auto kFlushEvery = std::chrono::milliseconds(50);
  static constexpr std::size_t kFlushAfter = 4096;

  /// `db` may be null (--db none): then only the engines' load changes are read from copies.
  HubRecorder(hub::TaskDb* db, Options options, PluginOf plugin_of);

  /// Restore: tasks in flight when the old controller died are failed with a ConnectionError
  /// until a late reply says otherwise (an engine that finished one sends its reply when it
  /// reconnects; it is recorded then). Returns how many.
  std::size_t fail_unfinished();

  /// A task its client sent to a controller that died before the hub recorded it (the
  /// client lists its requests in flight when it sees the restored controller): recorded as
  /// failed by the restart, unless the hub knows the task (a row, or a write waiting). A late
  /// reply repairs it as any restart's error. `kind` is apply, map, execute, push, pull or
  /// clear. Returns whether it made a record.
  bool lost(net::TaskId id, std::string_view kind, const std::string& task,
            const std::string& client, std::int64_t submitted);

  /// Appends everything `feed` holds to the backlog.
  void take(TrafficFeed& feed);
  /// Records at most `limit` copies of the backlog, for at most `budget`, appending what they
  /// say of engines' loads to `loads`. Returns true when it stopped with more waiting. A copy
  /// that cannot be recorded is logged and skipped.
  bool record_some(std::size_t limit, Clock::duration budget, std::vector<EngineLoadChange>& loads);
  /// Records one copy (what record_some() does for each).
  void record(const Traffic& copy, std::vector<EngineLoadChange>& loads);

  /// Writes what waits in one transaction. When the database refuses (a full disk, a damaged
  /// page), nothing of that transaction stays, the writes are kept and tried again after a
  /// growing pause (kRetryFirst, doubling up to kRetryMost); health() says so meanwhile. A
  /// record refused for what it holds, not for the disk, is written alone, and dropped (and
  /// logged) when it is refused again. Never throws.
  void flush(Clock::time_point now = Clock::now());
  /// The database's trouble, for queue_status and `cluster status`: {"ok": false, "error",
  /// "failing_for_s", "writes_waiting", "writes_lost"}; nullopt while all is well.
  [[nodiscard]] std::optional<Value> health(Clock::time_point now = Clock::now()) const;

  static constexpr auto kRetryFirst = std::chrono::milliseconds(500);
  static constexpr auto kRetryMost = std::chrono::seconds(10);
  /// Writes kept while the database refuses them; beyond, new ones are lost (and counted).
  static constexpr std::size_t kMaxKept = 200000;
  /// Whether a flush is due at `now`.
  [[nodiscard]] bool flush_due(Clock::time_point now) const;
  /// When the next flush falls due, if writes wait.
  [[nodiscard]] std::optional<Clock::time_point> next_flush() const;
  [[nodiscard]] std::size_t backlog() const noexcept { return backlog_.size(); }
  [[nodiscard]] hub::TaskDb* db() const noexcept { return db_; }

 private:
  /// Names a task called by its bare name by its plugin too (`mul` -> `arith.mul`).
  static void qualify(hub::TaskRecord& r);
  struct Write {
    hub::TaskRecord record;  // fresh: the whole row; else msg_id and what changed
    bool fresh = false;      // submitted since the last flush
  };
  Write& write_for(net::TaskId id);
  /// What becomes of a late reply (Traffic::late) of task `id`, a value when `ok`: recorded
  /// when the task has no outcome yet, or only the one a controller restart gave it (and as a
  /// new record when there is none); skipped otherwise: its client was told something else
  /// (the engine died, a retry's result), and the record says the same. One exception: a
  /// value replaces a failure that was itself a late reply. Engines send their recent replies
  /// again to a restored controller, in no order among engines, also those of attempts that
  /// failed and were retried elsewhere; of a task retried, its client got the value.
  enum class Late : std::uint8_t { record, record_new, skip };
  Late late_reply(net::TaskId id, bool ok);
  /// Puts or updates every write, then commits. Throws what the database throws.
  void write_all();
  /// Writes each write alone; drops those refused for what they hold. False when the database
  /// refused for its own reasons (then nothing was dropped that could still be written).
  bool write_one_by_one();
  void failed(const std::string& why, Clock::time_point now);
  void keep_parts(const std::vector<Buffer>& msg, std::size_t from, std::int64_t& size,
                  std::string& packed, std::vector<Buffer>& parts) const;
  void on_submit(const Traffic& copy, const std::vector<Buffer>& msg);
  void on_reply(const Traffic& copy, const std::vector<Buffer>& msg,
                std::vector<EngineLoadChange>& loads);

  hub::TaskDb* db_;
  Options options_;
  PluginOf plugin_of_;
  std::unordered_map<net::TaskId, Write, net::TaskIdHash> writes_;
  std::size_t unflushed_ = 0;
  Clock::time_point last_flush_ = Clock::now();
  std::deque<Traffic> backlog_;
  LogLimiter unrecorded_;  // warnings of copies that could not be recorded
  // The database refusing writes: since when, why, and when to try again.
  bool failing_ = false;
  Clock::time_point failing_since_{};
  Clock::time_point retry_at_{};
  Clock::duration retry_pause_ = kRetryFirst;
  std::string last_error_;
  std::uint64_t lost_ = 0;  // writes given up: refused alone, or beyond kMaxKept
  Write scratch_;           // where a write beyond kMaxKept goes, to be forgotten
  LogLimiter refusals_;
  LogLimiter late_;  // late replies not recorded
  // Tasks whose record is a failure a late reply gave (a value may replace it), the oldest
  // forgotten beyond kLateFailuresKept.
  static constexpr std::size_t kLateFailuresKept = 1 << 16;
  std::unordered_set<net::TaskId, net::TaskIdHash> late_failures_;
  std::deque<net::TaskId> late_failures_order_;
};

}  // namespace ipp::ctrl
