#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ipp/buffer.hpp"
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
  /// Instead of `args` / `result` when set: the payload's parts as the hub received them,
  /// which put() and update() pack where they keep them (a large payload goes to its file
  /// with no packed copy in memory first). Records read back have `args` / `result`.
  std::vector<Buffer> args_parts, result_parts;
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
///
/// Beside a file, arguments and results larger than `file_payloads_above` are kept as files
/// of their own in `<file>.payloads/` (`<msg_id>.args`, `<msg_id>.result`), their columns
/// NULL: written once each, where SQLite would write such a blob to its log, copy it into
/// the database at the next checkpoint, and write it again when the row's result comes.
class TaskDb {
 public:
  /// The default of Options::file_payloads_above; the hub hands payloads this large over as
  /// their parts, for the database to write without packing them in memory first.
  static constexpr std::int64_t kFilePayloadsAbove = 64 << 10;
  struct Options {
    std::filesystem::path file;     ///< empty: in memory
    std::int64_t record_limit = 0;  ///< 0: unlimited
    std::int64_t size_limit = 0;    ///< bytes of args + results; 0: unlimited
    std::int64_t file_payloads_above = kFilePayloadsAbove;  ///< bytes; a file database only
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
  /// Where payloads kept as files go (empty for a database in memory).
  [[nodiscard]] const std::filesystem::path& payload_dir() const noexcept { return payload_dir_; }

  /// The names a query may use.
  static const std::vector<std::string>& fields();

 private:
  void exec(const char* sql);
  void begin_if_needed();
  void enforce_limits();
  /// Binds `blob`, the `part` ("args", "result") of task `msg_id`, to parameter `i` of `stmt`:
  /// inline, or NULL after writing it to its file.
  void bind_payload(sqlite3_stmt* stmt, int i, const std::string& msg_id, const char* part,
                    const std::string& blob, const std::vector<Buffer>& parts);
  /// The files of the records `select` (a statement giving msg_ids) names go at the next
  /// commit.
  void doom_files(sqlite3_stmt* select);
  /// The file of `part` ("args", "result") of task `msg_id`.
  [[nodiscard]] std::filesystem::path payload_path(const std::string& msg_id,
                                                   const char* part) const;
  [[nodiscard]] TaskRecord read_row(sqlite3_stmt* s) const;

  Options options_;
  std::filesystem::path payload_dir_;
  bool payload_dir_made_ = false;
  std::vector<std::string> doomed_;  // msg_ids whose payload files go after the commit
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
std::string pack_parts(const std::vector<Buffer>& parts);
/// The bytes pack_parts() makes of `parts`.
std::int64_t packed_size(const std::vector<Buffer>& parts);
std::vector<std::string> unpack_parts(std::string_view blob);

}  // namespace ipp::hub
