#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipp/error.hpp"
#include "ipp/value.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace ipp::hub {

/// Everything the hub knows about one task.
struct TaskRecord {
  std::string msg_id;
  std::string client;  ///< the submitting client's session
  std::string queue;   ///< "direct" or "balanced"
  std::string kind;    ///< "apply", "map", "execute", "push", "pull", "clear"
  std::string task;    ///< the task as named by the client
  std::string plugin;  ///< the plugin that ran it, once known
  std::string plugin_hash;
  std::int64_t target = -1;  ///< direct: the engine asked for
  std::int64_t engine = -1;  ///< the engine it was given to
  std::string bind;          ///< apply_to / map_to: the name the result was bound to
  std::string args;          ///< the request's payload, serialised (see pack_parts); empty when it
                             ///< was larger than the hub keeps
  std::int64_t submitted = 0, started = 0, completed = 0, received = 0;  ///< µs since epoch
  std::string status = "pending";  ///< pending, running, ok, error, aborted, cancelled, engine_died
  std::string result;              ///< the reply's payload, serialised
  std::optional<ErrorRecord> error;
  std::string resubmitted_from;
  std::int64_t args_size = 0;    ///< bytes of the request's payload (kept in `args` or not)
  std::int64_t result_size = 0;  ///< bytes of the reply's payload
};

/// One condition of a query: FIELD OP VALUE, OP one of == != < <= > >= in glob.
struct Condition {
  std::string field;
  std::string op;
  Value value;  ///< a list for `in`; a pattern string for `glob`
};

/// The hub's task database: SQLite in a file (WAL mode) or in memory, written by the hub's
/// thread only. Writes are buffered and committed in one transaction per flush(). Beyond
/// `record_limit` records or `size_limit` bytes of stored payloads, the oldest records go.
class TaskDb {
 public:
  struct Options {
    std::filesystem::path file;     ///< empty: in memory
    std::int64_t record_limit = 0;  ///< 0: unlimited
    std::int64_t size_limit = 0;    ///< bytes of args + results; 0: unlimited
  };
  /// Opens (creating) the database. Throws Error naming the file and what is wrong with it
  /// (not a database, read-only, ...).
  explicit TaskDb(Options options);
  ~TaskDb();
  TaskDb(const TaskDb&) = delete;
  TaskDb& operator=(const TaskDb&) = delete;

  /// Inserts or replaces the whole record.
  void put(const TaskRecord& record);
  /// Updates a record put before with what changes after submission: times, status, result
  /// and error; the engine when `record.engine` >= 0; plugin / plugin_hash when the stored
  /// record of an apply or map names none yet. The arguments and the other submission fields
  /// stay as put. Does nothing when the record is gone (retention limits, or never put).
  void update(const TaskRecord& record);
  /// Commits what was put since the last flush, then applies the retention limits.
  void flush();

  [[nodiscard]] std::optional<TaskRecord> get(const std::string& msg_id);
  /// Records matching every condition, oldest first, at most `limit` (0: all).
  /// Throws UsageError naming an unknown field or operator.
  [[nodiscard]] std::vector<TaskRecord> query(const std::vector<Condition>& conditions,
                                              std::int64_t limit = 0);
  /// Msg ids, oldest first; the last `limit` when limit > 0.
  [[nodiscard]] std::vector<std::string> history(std::int64_t limit = 0);
  /// Removes the named records; returns how many there were.
  std::int64_t purge(const std::vector<std::string>& msg_ids);
  /// Removes records submitted before `before_us`; returns how many.
  std::int64_t purge_before(std::int64_t before_us);
  /// Removes every record that is finished; returns how many.
  std::int64_t purge_all();
  [[nodiscard]] std::int64_t count();

  /// The names a query may use.
  static const std::vector<std::string>& fields();

 private:
  void exec(const char* sql);
  void begin_if_needed();
  void enforce_limits();

  Options options_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* put_ = nullptr;
  sqlite3_stmt* update_ = nullptr;
  bool in_transaction_ = false;
};

/// A record as a Value map (what clients receive), with the payload fields left out unless
/// `with_payloads`.
Value to_value(const TaskRecord& record, bool with_payloads = false);

/// Serialises payload parts (a root and side frames) into one blob and back.
std::string pack_parts(const std::vector<std::string_view>& parts);
std::vector<std::string> unpack_parts(std::string_view blob);

}  // namespace ipp::hub
