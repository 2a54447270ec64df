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
#include "task_record.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace ipp::hub {

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
/// A write the database refused. transient(): the disk is full or failing, or the file is
/// busy: the same write may succeed later. Else the record itself (or the file) is the trouble.
class WriteError : public Error {
 public:
  WriteError(const std::string& message, bool transient)
      : Error(ErrorCode::unknown, message), transient_(transient) {}
  [[nodiscard]] bool transient() const noexcept { return transient_; }

 private:
  bool transient_;
};

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
  /// Commits what was put since the last flush, then applies the retention limits. put(),
  /// update() and flush() throw WriteError when the database refuses.
  void flush();
  /// Undoes what was put since the last flush (after a WriteError). Never throws.
  void rollback() noexcept;

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
  /// The database's size in pages, and a cap on it (SQLite's max_page_count): writes past the
  /// cap fail as on a full disk.
  [[nodiscard]] std::int64_t page_count();
  void limit_pages(std::int64_t pages);
  /// Where payloads kept as files go (empty for a database in memory).
  [[nodiscard]] const std::filesystem::path& payload_dir() const noexcept { return payload_dir_; }

  /// The names a query may use.
  static const std::vector<std::string>& fields();

 private:
  void exec(const char* sql);
  /// Throws Error when PRAGMA quick_check finds a damaged page.
  void check_pages();
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

}  // namespace ipp::hub
