#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "ipp/codec.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/runtime/plugin_store.hpp"

namespace ipp::ctrl {

/// The hub's plugins: the store of pushed files, the pushes in flight and the engines'
/// acknowledgements, what engines reported of each plugin, and the set replayed to every engine
/// that registers later (and to a restored controller's engines). The controller never runs
/// plugin code: a pushed file is checked without loading it.
///
/// The replay set holds one build per plugin name, the one pushed last (an older build pushed
/// again is a rollback, and sticks). A plugin that failed on every engine it was pushed to, or
/// that took an engine down as it loaded, leaves the set: engines that register later never
/// crash-loop on it. The set is kept in `pushed.txt` in the store; a fresh controller starts
/// with an empty one, a restored one replays it.
///
/// Each call returns the messages to send on the registration socket, routes set.
///
///     PluginDistributor plugins(profile / "plugins", restore);
///     for (auto& m : plugins.push(request, header, engines)) send(m);
///     for (auto& m : plugins.loaded(header)) send(m);          // an engine's PluginLoaded
///
/// Not thread-safe: the hub's thread owns it.
class PluginDistributor {
 public:
  /// An engine a push goes to: its id and its route on the registration socket.
  struct Target {
    std::int64_t id;
    const std::vector<zmq::message_t>* route;
  };

  using Clock = std::chrono::steady_clock;

  /// Uses (and creates) `store_dir`. With `restore`, the replay set of the controller before
  /// (its `pushed.txt`) is replayed to engines again; without, the set starts empty. A push is
  /// answered at the latest `load_timeout` after it came: engines that have not finished
  /// loading by then (an initializer that hangs) are named in its error.
  PluginDistributor(std::filesystem::path store_dir, bool restore,
                    Clock::duration load_timeout = std::chrono::seconds(30));

  /// A client's PushRequest `h` (its payload: the file's bytes): the file is stored and
  /// checked, then pushed to `targets`. Returns a PushReply with a PluginLoadError when the
  /// file is refused, the reply at once when there are no engines, else one PluginPush per
  /// engine (the reply follows when every engine has answered, see loaded()).
  std::vector<net::Envelope> push(const net::Envelope& request, const net::Header& h,
                                  const std::vector<Target>& targets,
                                  Clock::time_point now = Clock::now());
  /// A client's request (a PushRequest whose `info` has "unload") to unload the plugin named
  /// `h.task`: it leaves the replay set and every engine in `targets` is told to unload it;
  /// the reply ({"name", "engines": {id: "ok" or why not}}) follows when all have answered.
  /// A name with no active build is answered at once with a UsageError naming those there are.
  std::vector<net::Envelope> unload(const net::Envelope& request, const net::Header& h,
                                    const std::vector<Target>& targets,
                                    Clock::time_point now = Clock::now());
  /// Answers the pushes whose engines did not all answer within the load time-out.
  std::vector<net::Envelope> expire(Clock::time_point now);
  /// Every plugin pushed so far, for an engine that registers: one PluginPush each, whose ids
  /// are added to `awaiting` (the engine is ready once it has answered them all).
  std::vector<net::Envelope> replay_to(const Target& engine, std::set<std::string>& awaiting);
  /// An engine's PluginLoaded `h`: what it reports of the plugin is kept, and the push it
  /// answers is answered to its client once every engine did.
  std::vector<net::Envelope> loaded(const net::Header& h);
  /// Engine `id` is gone (`why` completes "engine 3 ..."): the pushes that waited for it count
  /// it as failed, and those that waited for it alone are answered. When it `crashed` (its own
  /// code ended it: a crash signal or an exit, see net::engine_exit_is_crash), a plugin it was
  /// loading (the first replayed one it had not acknowledged) leaves the replay set; an engine
  /// removed, killed from outside (SIGKILL) or declared dead by its heartbeats blames none.
  std::vector<net::Envelope> engine_gone(std::int64_t id, const std::string& why, bool crashed);

  /// The plugin (name, hash) a task name refers to, as far as engines reported ({} when
  /// unknown). Answers are kept until a plugin is pushed or described again.
  [[nodiscard]] std::pair<std::string, std::string> plugin_of(const std::string& task);
  /// What engines reported of every build pushed, in push order, each marked `active` when it
  /// is in the replay set (the `plugins` query).
  [[nodiscard]] Value describe() const;
  /// How many plugins are replayed to a registering engine.
  [[nodiscard]] std::size_t size() const noexcept { return plugins_.size(); }
  /// Pushes waiting for engines' answers.
  [[nodiscard]] std::size_t in_flight() const noexcept { return pushes_.size(); }

 private:
  // A plugin with the file as it arrived: engines get that payload as is (its buffers are
  // shared, not copied or read again from disk).
  struct Stored {
    StoredPlugin stored;
    Payload file;
    std::string name;  // as an engine reported it, else as the client named the file
  };
  struct Push {
    std::vector<zmq::message_t> client;
    std::string request_id;
    std::string name;
    std::string hash;
    Clock::time_point deadline;
    std::set<std::int64_t> waiting;
    Value::Map results;
    std::vector<ErrorRecord> errors;
    std::size_t faults = 0;  // errors that are the plugin's: a load error, a crash, a hang
    bool unload = false;     // an unload, not a push
  };
  struct Replay {  // a plugin sent to a registering engine, not acknowledged yet
    std::string push_id;
    std::string hash;
  };

  net::Envelope push_message(const Target& engine, const Stored& plugin,
                             const std::string& push_id) const;
  /// The push `id`'s reply, when no engine is left to answer it.
  void finish(const std::string& id, std::vector<net::Envelope>& out);
  [[nodiscard]] std::pair<std::string, std::string> find_plugin(const std::string& task) const;
  /// Makes `plugin` the active build of its name: older builds of that name leave the set.
  void activate(Stored plugin);
  /// Takes the build `hash` out of the replay set, saying `why` in the log.
  void deactivate(const std::string& hash, const std::string& why,
                  spdlog::level::level_enum level = spdlog::level::err);
  /// Writes the replay set to the manifest (whole, atomically).
  void save() const;
  void load_manifest();

  PluginStore store_;
  Clock::duration load_timeout_;
  std::filesystem::path manifest_;
  std::vector<std::string> history_;        // every build's hash, in the order first pushed
  std::vector<Stored> plugins_;             // in push order
  std::map<std::string, Push> pushes_;      // by the push's msg id sent to engines
  std::map<std::string, Value> described_;  // plugin hash -> what an engine reported of it
  std::map<std::int64_t, std::vector<Replay>> replaying_;  // by engine, in the order sent
  std::unordered_map<std::string, std::pair<std::string, std::string>> names_;  // plugin_of's
};

}  // namespace ipp::ctrl
