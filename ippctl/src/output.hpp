#pragma once

// How ippctl prints: values as their repr or as JSON, one writer for both.

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "globals.hpp"
#include "interrupt.hpp"
#include "ipp/client.hpp"

namespace ipp::ctl {

using json = nlohmann::ordered_json;

/// A value as JSON: lists, ranges and arrays as arrays, maps as objects, bytes as binary,
/// a reference as {"ref": name}.
json to_json(const Value& v);

/// Prints `j` as one line of JSON text (bytes that are not UTF-8 become U+FFFD).
void print_json(const json& j);

/// Prints `v`: its repr, or with --json {"result": v, "msg_ids": [...]}.
void print(const Globals& g, const Value& v, const std::vector<std::string>& msg_ids = {});

/// A client for a command that submits work, and the wait for that work. Ctrl-C while it
/// waits cancels the work (queued tasks do not run, running ones are told), says so with the
/// msg_ids, and ends the command (Interrupted, exit code 130); a second Ctrl-C ends ippctl.
class Submission {
 public:
  explicit Submission(const Globals& g);
  Client& client() { return rc_; }
  /// Waits for `r` and prints its value (with `quiet`, only under --json), or, under --json,
  /// its error as {"error", "code", "msg_ids"} before rethrowing it.
  void finish(const AsyncResult& r, bool quiet);

 private:
  void cancel(const AsyncResult& r);

  const Globals& g_;
  Interrupt interrupt_;  // before rc_: the client's threads start with SIGINT blocked
  Client rc_;
};

}  // namespace ipp::ctl
