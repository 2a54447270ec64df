#pragma once

// The client's requests waiting for their replies, and the result states that callers wait
// on. Private to ipp::client.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ipp/client.hpp"
#include "ipp/codec.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"

namespace ipp::detail {

/// What a request keeps of its reply's header: the fields results and their metadata read.
/// (A whole header is several times larger, and 100 000 results held keep 100 000 of them.)
struct Reply {
  std::int64_t engine = -1;
  std::int64_t started = 0;
  std::int64_t completed = 0;
  std::optional<ErrorRecord> error;
  Value info;

  static Reply of(net::Header&& h) {
    return {h.engine, h.started, h.completed, std::move(h.error), std::move(h.info)};
  }
};

/// One request waiting for its reply.
struct Slot {
  std::string msg_id;
  std::string task;
  /// What was sent: a task to a scheduler (which the hub records), or a hub request (a query
  /// or a push).
  net::MsgType type = net::MsgType::QueryRequest;
  std::int64_t target = -1;
  std::int64_t submitted = 0;
  /// The scheduler's channel a task went to (-1: none), and whether on the I/O thread's
  /// connection (false: a synchronous caller's own): a probe must take the same way.
  int channel = -1;
  bool own_connection = false;
  bool done = false;
  Reply reply;
  Payload payload;
  std::int64_t received = 0;
};

enum class Combine { single, per_engine, gather };

struct ClientCore;

/// The requests of one call (an AsyncResult's), and how their replies combine.
struct ResultState {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::shared_ptr<Slot>> slots;
  std::size_t remaining = 0;
  Combine combine = Combine::single;
  bool unwrap = false;             // each reply is a one-element list (a pull of one name)
  std::weak_ptr<ClientCore> core;  // for abort and cancel
};

/// The requests a client sent and waits for, by id: each is completed by its reply or
/// failed with a ConnectionError (the controller stopped answering, or restarted), and its
/// result state told. Thread-safe: callers add, the I/O thread and synchronous callers
/// complete, Client::wait waits for none to be left.
///
///     pending.add(slot, state);
///     pending.finish(header, envelope);   // a reply came: false when nothing waits for it
///     pending.fail_all([](auto&) { return "the controller stopped answering"; });
class PendingRequests {
 public:
  /// Waits for `slot`, one of `owner`'s requests. Throws UsageError for an id this client
  /// did not make (net::new_id(): 32 hex digits).
  void add(std::shared_ptr<Slot> slot, std::shared_ptr<ResultState> owner);
  /// add() when nothing is pending (a synchronous call may take its own connection only
  /// then); returns whether it did.
  bool add_if_none(std::shared_ptr<Slot> slot, std::shared_ptr<ResultState> owner);
  /// Completes the request that `h` answers (`env` holds its payload); false when none waits
  /// under its parent id (a late reply to a request failed meanwhile, or none of ours).
  bool finish(net::Header h, net::Envelope& env);
  /// Fails the request `msg_id` saying `why`, as an error of kind `code`.
  void fail(const std::string& msg_id, const std::string& why,
            ErrorCode code = ErrorCode::connection);
  /// The tasks sent on the I/O thread's connections before `before` (net::now_us), still
  /// waiting and not returned by an earlier call, oldest first and at most `limit`: each as
  /// its scheduler's channel and its id. Once a scheduler has a task it keeps it until it
  /// answered it, so asking about each once is enough. Costs what it returns and the tasks
  /// answered meanwhile that it passes over, not every task waiting.
  [[nodiscard]] std::vector<std::pair<int, std::string>> silent(std::int64_t before,
                                                                std::size_t limit);
  /// Fails every request but `except` (the one whose reply showed the controller restarted);
  /// `why(msg_id)` gives each its message.
  void fail_all(const std::function<std::string(const std::string&)>& why,
                std::string_view except = {});
  /// Stops waiting for `msg_id`, its state untouched (its caller gave up).
  void forget(const std::string& msg_id);
  /// Waits until none is pending, at most `limit`; false when some still are.
  bool wait_all(std::optional<Duration> limit);
  [[nodiscard]] bool empty() const;
  /// The tasks among them that the hub records, as [msg_id, kind, task, submitted] each:
  /// kind apply, map, execute, or push, pull or clear for namespace requests.
  [[nodiscard]] Value::List tasks_in_flight() const;

 private:
  struct Pending {
    std::shared_ptr<Slot> slot;
    std::shared_ptr<ResultState> owner;
  };
  /// Pending requests by their id's 16 bytes: no string to allocate or hash per request.
  using Table = std::unordered_map<net::TaskId, Pending, net::TaskIdHash>;
  static net::TaskId key(const std::string& msg_id);
  /// The request `msg_id` names; end() for one that is not, or is no id at all (a reply's
  /// parent_id comes from the wire). With mutex_ held.
  Table::iterator find(std::string_view msg_id);
  /// Takes the request `msg_id` out; an empty Pending when there is none.
  Pending take(std::string_view msg_id);
  static void fail(Pending& p, const std::string& why, ErrorCode code = ErrorCode::connection);

  /// A task sent on the I/O thread's connection (see silent()).
  struct Sent {
    std::int64_t submitted;
    int channel;
    net::TaskId id;
  };

  mutable std::mutex mutex_;
  std::condition_variable none_left_;
  Table table_;
  std::deque<Sent> sent_;  // in the order they were added, which is (nearly) their age
};

}  // namespace ipp::detail
