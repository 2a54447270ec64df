#include "task_db.hpp"

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ipp/net/header.hpp"
#include "ipp/net/json_text.hpp"
#include "payload_file.hpp"

namespace ipp::hub {

namespace {

using json = nlohmann::json;

// Column order of the tasks table; put() binds in this order and rows are read in it.
constexpr std::array<const char*, 22> kColumns = {
    "msg_id",           "client",    "queue",       "kind",   "task",   "plugin",
    "plugin_hash",      "target",    "engine",      "bind",   "args",   "submitted",
    "started",          "completed", "received",    "status", "result", "error",
    "resubmitted_from", "args_size", "result_size", "size"};

bool is_text_field(std::string_view f) {
  return f == "msg_id" || f == "client" || f == "queue" || f == "kind" || f == "task" ||
         f == "plugin" || f == "plugin_hash" || f == "bind" || f == "status" ||
         f == "resubmitted_from";
}

std::string text_at(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_blob(s, i);
  const int n = sqlite3_column_bytes(s, i);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
}

TaskRecord read_columns(sqlite3_stmt* s) {
  TaskRecord r;
  r.msg_id = text_at(s, 0);
  r.client = text_at(s, 1);
  r.queue = text_at(s, 2);
  r.kind = text_at(s, 3);
  r.task = text_at(s, 4);
  r.plugin = text_at(s, 5);
  r.plugin_hash = text_at(s, 6);
  r.target = sqlite3_column_int64(s, 7);
  r.engine = sqlite3_column_int64(s, 8);
  r.bind = text_at(s, 9);
  r.args = text_at(s, 10);
  r.submitted = sqlite3_column_int64(s, 11);
  r.started = sqlite3_column_int64(s, 12);
  r.completed = sqlite3_column_int64(s, 13);
  r.received = sqlite3_column_int64(s, 14);
  r.status = text_at(s, 15);
  r.result = text_at(s, 16);
  r.error = error_from_json(text_at(s, 17));
  r.resubmitted_from = text_at(s, 18);
  r.args_size = sqlite3_column_int64(s, 19);
  r.result_size = sqlite3_column_int64(s, 20);
  return r;
}

/// A prepared statement, finalised on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const std::string& sql) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr) != SQLITE_OK) {
      throw Error(ErrorCode::unknown,
                  fmt::format("task database: cannot prepare query: {}", sqlite3_errmsg(db)));
    }
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_ = nullptr;
};

void bind_value(sqlite3_stmt* s, int i, const Value& v, const std::string& field) {
  switch (v.kind()) {
    case Value::Kind::integer:
      sqlite3_bind_int64(s, i, v.as_int());
      return;
    case Value::Kind::floating:
      sqlite3_bind_double(s, i, v.as_float());
      return;
    case Value::Kind::boolean:
      sqlite3_bind_int64(s, i, v.as_bool() ? 1 : 0);
      return;
    case Value::Kind::string:
      sqlite3_bind_text(s, i, v.as_string().data(), static_cast<int>(v.as_string().size()),
                        SQLITE_TRANSIENT);
      return;
    case Value::Kind::null:
      sqlite3_bind_null(s, i);
      return;
    default:
      throw UsageError(fmt::format("cannot compare field '{}' with a {}", field, v.type_name()));
  }
}

// The bound strings outlive the statement's step (the caller's record), so SQLite need not
// copy them.
void bind_text(sqlite3_stmt* stmt, int i, const std::string& s) {
  sqlite3_bind_text(stmt, i, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
}
void bind_blob(sqlite3_stmt* stmt, int i, const std::string& s) {
  sqlite3_bind_blob64(stmt, i, s.data(), s.size(), SQLITE_STATIC);
}
/// Runs a bound write statement; throws Error naming the record when it fails. The bindings
/// are released either way: they point into the caller's record.
/// Whether SQLite's result `rc` is about the disk or the file's locks (the same write may work
/// later), not about what was written.
bool transient(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
      return true;
    default:
      return false;
  }
}

void step_write(sqlite3* db, sqlite3_stmt* stmt, const std::string& msg_id) {
  const int rc = sqlite3_step(stmt);
  const std::string why = rc == SQLITE_DONE ? std::string() : sqlite3_errmsg(db);
  const int code = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(db);
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  if (rc != SQLITE_DONE)
    throw WriteError(fmt::format("cannot record {}: {}", msg_id, why), transient(code));
}

}  // namespace

const std::vector<std::string>& TaskDb::fields() {
  static const std::vector<std::string> out = [] {
    std::vector<std::string> f;
    for (const char* c : kColumns) {
      if (std::string_view(c) != "args" && std::string_view(c) != "result" &&
          std::string_view(c) != "error" && std::string_view(c) != "size" &&
          std::string_view(c) != "args_size" && std::string_view(c) != "result_size")
        f.emplace_back(c);
    }
    return f;
  }();
  return out;
}

TaskDb::TaskDb(Options options) : options_(std::move(options)) {
  const std::string where = options_.file.empty() ? std::string("in memory")
                                                  : fmt::format("'{}'", options_.file.string());
  if (!options_.file.empty()) {
    // Records hold users' arguments and results: the owner's alone. SQLite gives its -wal and
    // -shm files the database file's mode.
    const int fd = ::open(options_.file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
      (void)::fchmod(fd, 0600);
      ::close(fd);
    }
    for (const char* suffix : {"-wal", "-shm"})
      (void)::chmod((options_.file.string() + suffix).c_str(), 0600);
  }
  // The hub's thread alone uses the database: no SQLite mutex on every call.
  const int rc =
      sqlite3_open_v2(options_.file.empty() ? ":memory:" : options_.file.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(ErrorCode::usage, fmt::format("task database {}: cannot open: {}", where, why));
  }
  sqlite3_busy_timeout(db_, 5000);
  if (!options_.file.empty()) {
    payload_dir_ = options_.file;
    payload_dir_ += ".payloads";
  }
  try {
    if (!options_.file.empty()) {
      // A file that is not a database fails here, before the controller serves anyone.
      exec("PRAGMA journal_mode=WAL");
      exec("PRAGMA synchronous=NORMAL");
      // 16 MiB of page cache (the default is 2): updates find their row and the msg_id index
      // in memory instead of reading pages back from the file.
      exec("PRAGMA cache_size=-16384");
      check_pages();
    }
    exec(
        "CREATE TABLE IF NOT EXISTS tasks ("
        " msg_id TEXT PRIMARY KEY, client TEXT, queue TEXT, kind TEXT, task TEXT, plugin TEXT,"
        " plugin_hash TEXT, target INTEGER, engine INTEGER, bind TEXT, args BLOB,"
        " submitted INTEGER, started INTEGER, completed INTEGER, received INTEGER, status TEXT,"
        " result BLOB, error TEXT, resubmitted_from TEXT, args_size INTEGER, result_size INTEGER,"
        " size INTEGER)");
    exec("CREATE INDEX IF NOT EXISTS tasks_submitted ON tasks(submitted)");
    // A read-only file is found out now, not at the first write.
    exec("BEGIN IMMEDIATE");
    exec("COMMIT");
    std::string sql = "INSERT OR REPLACE INTO tasks (";
    for (std::size_t i = 0; i < kColumns.size(); ++i)
      sql += fmt::format("{}{}", i ? ", " : "", kColumns[i]);
    sql += ") VALUES (";
    for (std::size_t i = 0; i < kColumns.size(); ++i)
      sql += i ? ", ?" : "?";
    sql += ")";
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &put_, nullptr) != SQLITE_OK)
      throw Error(ErrorCode::unknown, sqlite3_errmsg(db_));
    // The plugin that ran a task is named once: at submission when the hub knew it, else by
    // the first update that does (only tasks that run a plugin's task have one).
    const char* update =
        "UPDATE tasks SET"
        // A task called by its bare name, recorded before its plugin was known, is named as
        // it ran (arith.mul) once it is (see HubRecorder::qualify).
        // Its start in the controller's clock is an estimate within half a round trip: the
        // time it was received is never after it.
        " submitted = CASE WHEN ?5 > 0 AND submitted > ?5 THEN ?5 ELSE submitted END,"
        " task = CASE WHEN COALESCE(plugin, '') = '' AND kind IN ('apply', 'map') AND ?2 <> ''"
        " AND instr(task, '.') = 0 THEN ?2 || '.' || task ELSE task END,"
        " plugin = CASE WHEN COALESCE(plugin, '') = '' AND kind IN ('apply', 'map')"
        " THEN ?2 ELSE plugin END,"
        " plugin_hash = CASE WHEN COALESCE(plugin_hash, '') = '' AND kind IN ('apply', 'map')"
        " THEN ?3 ELSE plugin_hash END,"
        " engine = CASE WHEN ?4 >= 0 THEN ?4 ELSE engine END, started = ?5, completed = ?6,"
        " received = ?7, status = ?8, result = ?9, error = ?10, result_size = ?11,"
        // Arguments in a file count as their size at submission.
        " size = CASE WHEN args IS NULL THEN args_size ELSE LENGTH(args) END + ?12"
        " WHERE msg_id = ?1";
    if (sqlite3_prepare_v2(db_, update, -1, &update_, nullptr) != SQLITE_OK)
      throw Error(ErrorCode::unknown, sqlite3_errmsg(db_));
  } catch (const Error& e) {
    sqlite3_finalize(put_);
    sqlite3_finalize(update_);
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(ErrorCode::usage, fmt::format("task database {}: {}", where, e.what()));
  }
}

TaskDb::~TaskDb() {
  try {
    flush();
  } catch (const std::exception&) {
    // Closing: nothing more can be done.
  }
  sqlite3_finalize(put_);
  sqlite3_finalize(update_);
  sqlite3_close(db_);
}

void TaskDb::check_pages() {
  // A damaged page (a bad disk, a file changed under us) found now, before the hub writes on
  // it or answers from it: the start stops with a clear error and the file stays as it is.
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_, "PRAGMA quick_check(1)", -1, &raw, nullptr) != SQLITE_OK)
    throw Error(ErrorCode::unknown, fmt::format("is damaged: {}", sqlite3_errmsg(db_)));
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> s(raw, sqlite3_finalize);
  const int rc = sqlite3_step(s.get());
  const std::string verdict = rc == SQLITE_ROW ? text_at(s.get(), 0) : sqlite3_errmsg(db_);
  if (verdict != "ok") {
    throw Error(ErrorCode::unknown,
                fmt::format("is damaged ({}); move it away to keep it, or start with another "
                            "--db-file",
                            verdict));
  }
}

void TaskDb::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err != nullptr ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw Error(ErrorCode::unknown, why);
  }
}

void TaskDb::begin_if_needed() {
  if (in_transaction_) return;
  exec("BEGIN");
  in_transaction_ = true;
}

void TaskDb::put(const TaskRecord& r) {
  begin_if_needed();
  auto text = [&](int i, const std::string& s) { bind_text(put_, i, s); };
  text(1, r.msg_id);
  text(2, r.client);
  text(3, r.queue);
  text(4, r.kind);
  text(5, r.task);
  text(6, r.plugin);
  text(7, r.plugin_hash);
  sqlite3_bind_int64(put_, 8, r.target);
  sqlite3_bind_int64(put_, 9, r.engine);
  text(10, r.bind);
  bind_payload(put_, 11, r.msg_id, "args", r.args, r.args_parts);
  sqlite3_bind_int64(put_, 12, r.submitted);
  sqlite3_bind_int64(put_, 13, r.started);
  sqlite3_bind_int64(put_, 14, r.completed);
  sqlite3_bind_int64(put_, 15, r.received);
  text(16, r.status);
  bind_payload(put_, 17, r.msg_id, "result", r.result, r.result_parts);
  const std::string error = error_json(r.error);
  text(18, error);
  text(19, r.resubmitted_from);
  sqlite3_bind_int64(put_, 20, r.args_size);
  sqlite3_bind_int64(put_, 21, r.result_size);
  sqlite3_bind_int64(put_, 22,
                     static_cast<std::int64_t>(r.args.size() + r.result.size()) +
                         packed_size(r.args_parts) + packed_size(r.result_parts));
  step_write(db_, put_, r.msg_id);
}

void TaskDb::update(const TaskRecord& r) {
  begin_if_needed();
  auto text = [&](int i, const std::string& s) { bind_text(update_, i, s); };
  text(1, r.msg_id);
  text(2, r.plugin);
  text(3, r.plugin_hash);
  sqlite3_bind_int64(update_, 4, r.engine);
  sqlite3_bind_int64(update_, 5, r.started);
  sqlite3_bind_int64(update_, 6, r.completed);
  sqlite3_bind_int64(update_, 7, r.received);
  text(8, r.status);
  bind_payload(update_, 9, r.msg_id, "result", r.result, r.result_parts);
  const std::string error = error_json(r.error);
  text(10, error);
  sqlite3_bind_int64(update_, 11, r.result_size);
  sqlite3_bind_int64(update_, 12,
                     static_cast<std::int64_t>(r.result.size()) + packed_size(r.result_parts));
  step_write(db_, update_, r.msg_id);
}

void TaskDb::flush() {
  if (!in_transaction_) return;
  enforce_limits();
  char* err = nullptr;
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string why = err != nullptr ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw WriteError(fmt::format("cannot commit: {}", why),
                     transient(sqlite3_extended_errcode(db_)));
  }
  in_transaction_ = false;
  // The records are gone for good: now their files may go too.
  std::error_code ec;
  for (const auto& id : doomed_) {
    std::filesystem::remove(payload_path(id, "args"), ec);
    std::filesystem::remove(payload_path(id, "result"), ec);
  }
  doomed_.clear();
}

std::int64_t TaskDb::page_count() {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_, "PRAGMA page_count", -1, &raw, nullptr) != SQLITE_OK)
    throw Error(ErrorCode::unknown, sqlite3_errmsg(db_));
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> s(raw, sqlite3_finalize);
  return sqlite3_step(s.get()) == SQLITE_ROW ? sqlite3_column_int64(s.get(), 0) : 0;
}

void TaskDb::limit_pages(std::int64_t pages) {
  exec(fmt::format("PRAGMA max_page_count = {}", pages).c_str());
}

void TaskDb::rollback() noexcept {
  if (in_transaction_) (void)sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  in_transaction_ = false;
  doomed_.clear();
}

void TaskDb::bind_payload(sqlite3_stmt* stmt, int i, const std::string& msg_id, const char* part,
                          const std::string& blob, const std::vector<Buffer>& parts) {
  const std::int64_t size =
      parts.empty() ? static_cast<std::int64_t>(blob.size()) : packed_size(parts);
  if (!payload_dir_.empty() && size > options_.file_payloads_above &&
      net::TaskId::parse(msg_id)) {  // an id that can name a file: what schedulers pass on
    try {
      if (!payload_dir_made_) {
        std::filesystem::create_directories(payload_dir_);
        payload_dir_made_ = true;
      }
      const auto path = payload_path(msg_id, part);
      if (parts.empty())
        write_file(path, blob);
      else
        write_file(path, parts);
      sqlite3_bind_null(stmt, i);
      return;
    } catch (const std::exception&) {
      // No file (a full or read-only directory): the payload stays in its column, where
      // SQLite says what is wrong if it cannot be kept there either.
    }
  }
  if (parts.empty()) {
    bind_blob(stmt, i, blob);
    return;
  }
  const std::string packed = pack_parts(parts);
  sqlite3_bind_blob64(stmt, i, packed.data(), packed.size(), SQLITE_TRANSIENT);
}

std::filesystem::path TaskDb::payload_path(const std::string& msg_id, const char* part) const {
  return payload_dir_ / fmt::format("{}.{}", msg_id, part);
}

void TaskDb::doom_files(sqlite3_stmt* select) {
  if (payload_dir_.empty()) return;
  while (sqlite3_step(select) == SQLITE_ROW)
    doomed_.push_back(text_at(select, 0));
}

TaskRecord TaskDb::read_row(sqlite3_stmt* s) const {
  TaskRecord r = read_columns(s);
  // A NULL payload column is in its file; a payload not kept (larger than the hub keeps) is
  // an empty blob.
  auto load = [&](int column, const char* part, std::string& into) {
    if (payload_dir_.empty() || sqlite3_column_type(s, column) != SQLITE_NULL) return;
    if (auto blob = read_file(payload_path(r.msg_id, part))) into = std::move(*blob);
  };
  load(10, "args", r.args);
  load(16, "result", r.result);
  return r;
}

void TaskDb::enforce_limits() {
  if (options_.record_limit > 0) {
    Stmt files(db_,
               "SELECT msg_id FROM (SELECT msg_id, args, result FROM tasks ORDER BY submitted, "
               "rowid LIMIT max(0, (SELECT count(*) FROM tasks) - ?)) WHERE args IS NULL OR "
               "result IS NULL");
    sqlite3_bind_int64(files.get(), 1, options_.record_limit);
    doom_files(files.get());
    Stmt s(db_,
           "DELETE FROM tasks WHERE msg_id IN (SELECT msg_id FROM tasks ORDER BY submitted, rowid "
           "LIMIT max(0, (SELECT count(*) FROM tasks) - ?))");
    sqlite3_bind_int64(s.get(), 1, options_.record_limit);
    sqlite3_step(s.get());
  }
  if (options_.size_limit > 0) {
    Stmt total(db_, "SELECT coalesce(sum(size), 0) FROM tasks");
    sqlite3_step(total.get());
    std::int64_t bytes = sqlite3_column_int64(total.get(), 0);
    if (bytes <= options_.size_limit) return;
    Stmt oldest(db_, "SELECT msg_id, size FROM tasks ORDER BY submitted, rowid");
    std::vector<std::string> drop;
    while (bytes > options_.size_limit && sqlite3_step(oldest.get()) == SQLITE_ROW) {
      drop.push_back(text_at(oldest.get(), 0));
      bytes -= sqlite3_column_int64(oldest.get(), 1);
    }
    Stmt del(db_, "DELETE FROM tasks WHERE msg_id = ?");
    for (const auto& id : drop) {
      sqlite3_reset(del.get());
      sqlite3_bind_text(del.get(), 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
      sqlite3_step(del.get());
      if (!payload_dir_.empty()) doomed_.push_back(id);
    }
  }
}

std::optional<TaskRecord> TaskDb::get(const std::string& msg_id) {
  std::string sql = "SELECT ";
  for (std::size_t i = 0; i + 1 < kColumns.size(); ++i)
    sql += fmt::format("{}{}", i ? ", " : "", kColumns[i]);
  sql += " FROM tasks WHERE msg_id = ?";
  Stmt s(db_, sql);
  sqlite3_bind_text(s.get(), 1, msg_id.data(), static_cast<int>(msg_id.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
  return read_row(s.get());
}

std::vector<TaskRecord> TaskDb::query(const std::vector<Condition>& conditions,
                                      std::int64_t limit) {
  std::string sql = "SELECT ";
  for (std::size_t i = 0; i + 1 < kColumns.size(); ++i)
    sql += fmt::format("{}{}", i ? ", " : "", kColumns[i]);
  sql += " FROM tasks";
  const auto& known = fields();
  std::vector<std::pair<const Value*, const std::string*>> params;
  for (std::size_t i = 0; i < conditions.size(); ++i) {
    const Condition& c = conditions[i];
    if (std::find(known.begin(), known.end(), c.field) == known.end()) {
      std::string list;
      for (const auto& f : known)
        list += (list.empty() ? "" : ", ") + f;
      throw UsageError(fmt::format("unknown field '{}' (fields: {})", c.field, list));
    }
    sql += i == 0 ? " WHERE " : " AND ";
    if (c.op == "in") {
      if (c.value.kind() != Value::Kind::list)
        throw UsageError(fmt::format("'{} in' needs a list", c.field));
      sql += c.field + " IN (";
      for (std::size_t k = 0; k < c.value.size(); ++k) {
        sql += k ? ", ?" : "?";
        params.emplace_back(&c.value.as_list()[k], &c.field);
      }
      sql += ")";
    } else if (c.op == "glob") {
      if (!is_text_field(c.field) || c.value.kind() != Value::Kind::string)
        throw UsageError(
            fmt::format("glob works on text fields with a pattern string ('{}')", c.field));
      sql += c.field + " GLOB ?";
      params.emplace_back(&c.value, &c.field);
    } else if (c.op == "==" || c.op == "!=" || c.op == "<" || c.op == "<=" || c.op == ">" ||
               c.op == ">=") {
      sql += c.field + " " + (c.op == "==" ? "=" : c.op) + " ?";
      params.emplace_back(&c.value, &c.field);
    } else {
      throw UsageError(
          fmt::format("unknown operator '{}' (use ==, !=, <, <=, >, >=, in, glob)", c.op));
    }
  }
  sql += " ORDER BY submitted, rowid";
  if (limit > 0) sql += fmt::format(" LIMIT {}", limit);
  Stmt s(db_, sql);
  for (std::size_t i = 0; i < params.size(); ++i)
    bind_value(s.get(), static_cast<int>(i + 1), *params[i].first, *params[i].second);
  std::vector<TaskRecord> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back(read_row(s.get()));
  return out;
}

std::vector<std::string> TaskDb::history(std::int64_t limit) {
  Stmt s(db_, limit > 0 ? "SELECT msg_id FROM (SELECT msg_id, submitted, rowid AS r FROM tasks "
                          "ORDER BY submitted DESC, rowid DESC LIMIT ?) ORDER BY submitted, r"
                        : "SELECT msg_id FROM tasks ORDER BY submitted, rowid");
  if (limit > 0) sqlite3_bind_int64(s.get(), 1, limit);
  std::vector<std::string> out;
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back(text_at(s.get(), 0));
  return out;
}

std::int64_t TaskDb::purge(const std::vector<std::string>& msg_ids) {
  begin_if_needed();
  Stmt del(db_, "DELETE FROM tasks WHERE msg_id = ?");
  std::int64_t n = 0;
  for (const auto& id : msg_ids) {
    sqlite3_reset(del.get());
    sqlite3_bind_text(del.get(), 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    sqlite3_step(del.get());
    const int gone = sqlite3_changes(db_);
    if (gone > 0 && !payload_dir_.empty()) doomed_.push_back(id);
    n += gone;
  }
  flush();
  return n;
}

std::int64_t TaskDb::purge_before(std::int64_t before_us) {
  begin_if_needed();
  Stmt files(db_,
             "SELECT msg_id FROM tasks WHERE submitted < ? AND status NOT IN ('pending', "
             "'running') AND (args IS NULL OR result IS NULL)");
  sqlite3_bind_int64(files.get(), 1, before_us);
  doom_files(files.get());
  Stmt del(db_, "DELETE FROM tasks WHERE submitted < ? AND status NOT IN ('pending', 'running')");
  sqlite3_bind_int64(del.get(), 1, before_us);
  sqlite3_step(del.get());
  const std::int64_t n = sqlite3_changes(db_);
  flush();
  return n;
}

std::int64_t TaskDb::purge_all() {
  begin_if_needed();
  Stmt files(db_,
             "SELECT msg_id FROM tasks WHERE status NOT IN ('pending', 'running') AND (args IS "
             "NULL OR result IS NULL)");
  doom_files(files.get());
  exec("DELETE FROM tasks WHERE status NOT IN ('pending', 'running')");
  const std::int64_t n = sqlite3_changes(db_);
  flush();
  return n;
}

std::int64_t TaskDb::count() {
  Stmt s(db_, "SELECT count(*) FROM tasks");
  sqlite3_step(s.get());
  return sqlite3_column_int64(s.get(), 0);
}

}  // namespace ipp::hub
