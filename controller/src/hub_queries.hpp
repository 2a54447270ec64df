#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "engine_registry.hpp"
#include "hub_recorder.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "plugin_distributor.hpp"
#include "task_db.hpp"

namespace ipp::ctrl {

/// The hub's queries (`ids`, `engines`, `queue_status`, `plugins`, `result`, `request`,
/// `result_status`, `history`, `db_query`, `purge`, `engine_exited`, `remove_engines`,
/// `lost`, `shutdown`): a table from a query's name to its handler. A query that fails, or whose
/// info has the wrong shape, is answered with an error saying so; none goes unanswered.
///
///     HubQueries queries({.db = db, .registry = registry, ...});
///     if (auto reply = queries.answer(env, header)) send(*reply);
///
/// Not thread-safe: the hub's thread owns it.
class HubQueries {
 public:
  struct Deps {
    hub::TaskDb* db = nullptr;  ///< null with --db none
    EngineRegistry& registry;
    PluginDistributor& plugins;
    HubRecorder& recorder;
    /// Records every traffic copy the schedulers handed over so far (queries answer from
    /// everything sent before them).
    std::function<void()> catch_up;
    /// Unregisters an engine at once, `why` completing "engine 3 ...".
    std::function<void(std::int64_t, const std::string&, bool crashed)> drop_engine;
    /// Stops the controller.
    std::function<void()> shutdown;
    std::int64_t db_max_payload = 0;  ///< for the error of a payload the hub did not keep
    std::string session;              ///< the controller's instance id, in every reply
  };

  explicit HubQueries(Deps deps) : deps_(std::move(deps)) {}

  /// The reply to query `h` from `env`'s sender (route set), or nullopt when it is answered
  /// later (remove_engines: when the engines are gone; the registry queues that reply).
  std::optional<net::Envelope> answer(net::Envelope& env, const net::Header& h);

  /// The names of the queries there are, for help and errors.
  [[nodiscard]] static std::string names();

 private:
  struct Query {
    net::Envelope& env;
    const net::Header& h;
    net::Header& reply;
    Payload& payload;
  };
  /// A handler fills the reply; false: it will be answered later.
  using Handler = bool (HubQueries::*)(Query&);
  struct Entry {
    std::string_view name;
    Handler handler;
  };
  static const Entry kTable[];

  hub::TaskDb& need_db();
  bool stored(Query& q);  // result, request
  bool result_status(Query& q);
  bool history(Query& q);
  bool db_query(Query& q);
  bool purge(Query& q);
  bool ids(Query& q);
  bool engines(Query& q);
  bool queue_status(Query& q);
  bool plugins(Query& q);
  bool engine_exited(Query& q);
  bool remove_engines(Query& q);
  bool lost(Query& q);
  bool shutdown(Query& q);

  Deps deps_;
};

}  // namespace ipp::ctrl
