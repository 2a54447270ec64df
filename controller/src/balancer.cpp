#include "balancer.hpp"

#include <algorithm>
#include <climits>
#include <iterator>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace ipp::sched {

namespace {

ErrorRecord record(ErrorCode code, std::string type, std::string message, const std::string& task,
                   std::int64_t engine = -1) {
  ErrorRecord r;
  r.code = code;
  r.type = std::move(type);
  r.message = std::move(message);
  r.task = task;
  r.engine = engine;
  return r;
}

std::string short_id(const std::string& id) {
  return id.substr(0, 12);
}

}  // namespace

Scheme parse_scheme(std::string_view name) {
  if (name == "leastload") return Scheme::leastload;
  if (name == "lru") return Scheme::lru;
  if (name == "plainrandom") return Scheme::plainrandom;
  if (name == "twobin") return Scheme::twobin;
  if (name == "weighted") return Scheme::weighted;
  throw UsageError(fmt::format(
      "unknown scheme '{}' (use leastload, lru, plainrandom, twobin or weighted)", name));
}

std::string_view to_string(Scheme scheme) noexcept {
  switch (scheme) {
    case Scheme::leastload:
      return "leastload";
    case Scheme::lru:
      return "lru";
    case Scheme::plainrandom:
      return "plainrandom";
    case Scheme::twobin:
      return "twobin";
    case Scheme::weighted:
      return "weighted";
  }
  return "leastload";
}

Balancer::Balancer(BalancerOptions options) : options_(options), rng_(options.seed) {}

int Balancer::limit(const Engine& e) const {
  if (options_.hwm < 0) return e.slots;
  if (options_.hwm == 0) return INT_MAX;
  return options_.hwm;
}

int Balancer::load(std::int64_t id) const {
  auto it = engines_.find(id);
  return it == engines_.end() ? 0 : it->second.load;
}

std::string Balancer::engine_list() const {
  std::string out;
  for (const auto& [id, e] : engines_) {
    if (!e.draining) out += fmt::format("{}{}", out.empty() ? "" : ", ", id);
  }
  return "[" + out + "]";
}

// ---- engines --------------------------------------------------------------------------------

void Balancer::engine_up(std::int64_t id, int slots) {
  Engine& e = engines_[id];
  e.slots = std::max(1, slots);
  e.draining = false;
}

void Balancer::engine_drain(std::int64_t id) {
  if (auto it = engines_.find(id); it != engines_.end()) it->second.draining = true;
}

void Balancer::engine_down(std::int64_t id, std::string_view reason, Clock::time_point now) {
  auto it = engines_.find(id);
  if (it == engines_.end()) return;
  const auto held = std::move(it->second.tasks);
  engines_.erase(it);
  for (const auto& msg_id : held) {
    auto t = tasks_.find(msg_id);
    if (t == tasks_.end()) continue;
    Task& task = t->second;
    --running_count_;
    task.engine = -1;
    if (task.retries_left > 0) {
      --task.retries_left;
      task.tried.insert(id);
      requeue(msg_id, task, now);
      continue;
    }
    task.state = State::blocked;  // no longer running: fail() must not count it twice
    const std::string why =
        reason.empty() ? std::string() : fmt::format(" ({})", std::string(reason));
    fail(msg_id, record(ErrorCode::engine, "ipp::EngineError",
                        fmt::format("engine {} died while running task '{}'{}", id, task.task, why),
                        task.task, id));
  }
  // Ready tasks that must follow work done on that engine can no longer run.
  std::vector<std::pair<std::string, std::string>> stranded;  // msg_id, why
  for (const auto& [key, msg_id] : ready_) {
    const Task& t = tasks_.at(msg_id);
    if (t.flags.follow.empty()) continue;
    std::string why;
    bool impossible = false;
    (void)allowed(t, &why, &impossible);
    if (impossible) stranded.emplace_back(msg_id, std::move(why));
  }
  for (const auto& [msg_id, why] : stranded)
    fail_impossible(msg_id, why);
  settle();
}

// ---- tasks ------------------------------------------------------------------------------------

void Balancer::submit(const std::string& msg_id, const std::string& task,
                      const net::TaskFlags& flags, std::optional<Clock::duration> timeout,
                      Clock::time_point now) {
  auto invalid = [&](const std::string& why) {
    failures_.push_back({msg_id, record(ErrorCode::invalid_dependency, "ipp::InvalidDependency",
                                        fmt::format("task '{}' {}", task, why), task)});
    record_done(msg_id, false, -1);
    settle();
  };
  if (tasks_.count(msg_id) != 0 || done_.count(msg_id) != 0) {
    failures_.push_back(
        {msg_id, record(ErrorCode::usage, "ipp::UsageError",
                        fmt::format("msg_id {} was already submitted", short_id(msg_id)), task)});
    return;
  }
  for (const auto* dep : {&flags.after, &flags.follow}) {
    for (const auto& id : dep->ids) {
      if (id == msg_id) return invalid("depends on itself");
      if (tasks_.count(id) == 0 && done_.count(id) == 0) {
        return invalid(fmt::format(
            "depends on msg_id {}, which is not a load-balanced task of this controller "
            "(or finished too long ago to be remembered)",
            id));
      }
    }
  }
  if (!flags.targets.empty() && !engines_.empty()) {
    const bool any = std::any_of(flags.targets.begin(), flags.targets.end(), [&](std::int64_t e) {
      auto it = engines_.find(e);
      return it != engines_.end() && !it->second.draining;
    });
    if (!any) {
      std::string wanted;
      for (auto e : flags.targets)
        wanted += fmt::format("{}{}", wanted.empty() ? "" : ", ", e);
      failures_.push_back(
          {msg_id, record(ErrorCode::impossible_dependency, "ipp::ImpossibleDependency",
                          fmt::format("task '{}' cannot run: none of its target engines [{}] is "
                                      "registered (engines: {})",
                                      task, wanted, engine_list()),
                          task)});
      record_done(msg_id, false, -1);
      settle();
      return;
    }
  }
  Task& t = tasks_[msg_id];
  t.task = task;
  t.flags = flags;
  t.seq = ++seq_;
  t.retries_left = std::max(0, flags.retries);
  t.timeout = timeout;
  if (timeout) {
    t.deadline = now + *timeout;
    deadlines_.emplace(*t.deadline, msg_id);
  }
  for (const auto* dep : {&flags.after, &flags.follow}) {
    for (const auto& id : dep->ids) {
      if (done_.count(id) == 0) dependents_[id].push_back(msg_id);
    }
  }
  to_evaluate_.push_back(msg_id);
  settle();
}

Balancer::Verdict Balancer::check(const net::Dependency& d, std::string* why) const {
  if (d.ids.empty()) return Verdict::met;
  std::size_t accepted = 0, rejected = 0;
  std::string first_rejected;
  for (const auto& id : d.ids) {
    auto it = done_.find(id);
    if (it == done_.end()) continue;
    const bool ok = it->second.ok ? d.success : d.failure;
    if (ok) {
      ++accepted;
    } else {
      if (rejected++ == 0)
        first_rejected =
            fmt::format("task {} {}", short_id(id), it->second.ok ? "succeeded" : "failed");
    }
  }
  const std::string wanted = d.success && d.failure ? "to finish"
                             : d.failure            ? "to fail"
                                                    : "to succeed";
  if (d.all) {
    if (rejected > 0) {
      *why = fmt::format("{}, and it needs all of its dependencies {}", first_rejected, wanted);
      return Verdict::unreachable;
    }
    return accepted == d.ids.size() ? Verdict::met : Verdict::waiting;
  }
  if (accepted > 0) return Verdict::met;
  if (rejected == d.ids.size()) {
    *why = fmt::format("none of its {} dependencies went as needed ({} {})", d.ids.size(),
                       d.ids.size() == 1 ? "it needs it" : "it needs one of them", wanted);
    return Verdict::unreachable;
  }
  return Verdict::waiting;
}

std::optional<std::set<std::int64_t>> Balancer::allowed(const Task& t, std::string* why,
                                                        bool* impossible) const {
  *impossible = false;
  std::optional<std::set<std::int64_t>> out;
  if (!t.flags.follow.empty()) {
    std::set<std::int64_t> where;
    for (const auto& id : t.flags.follow.ids) {
      auto it = done_.find(id);
      if (it == done_.end() || it->second.engine < 0) continue;
      if (it->second.ok ? t.flags.follow.success : t.flags.follow.failure)
        where.insert(it->second.engine);
    }
    if (t.flags.follow.all && where.size() > 1) {
      *why = fmt::format("it must follow tasks that ran on different engines ({})",
                         fmt::join(where, ", "));
      *impossible = true;
      return std::set<std::int64_t>{};
    }
    std::set<std::int64_t> alive;
    for (auto e : where) {
      if (auto it = engines_.find(e); it != engines_.end() && !it->second.draining) alive.insert(e);
    }
    if (alive.empty()) {
      *why = fmt::format("the engine{} it must follow ({}) {} gone", where.size() == 1 ? "" : "s",
                         fmt::join(where, ", "), where.size() == 1 ? "is" : "are");
      *impossible = true;
      return alive;
    }
    out = std::move(alive);
  }
  if (!t.flags.targets.empty()) {
    std::set<std::int64_t> targets(t.flags.targets.begin(), t.flags.targets.end());
    if (out) {
      std::set<std::int64_t> both;
      std::set_intersection(out->begin(), out->end(), targets.begin(), targets.end(),
                            std::inserter(both, both.begin()));
      if (both.empty()) {
        *why = fmt::format("the engines it must follow ({}) are not among its targets ({})",
                           fmt::join(*out, ", "), fmt::join(targets, ", "));
        *impossible = true;
      }
      out = std::move(both);
    } else {
      out = std::move(targets);
    }
  }
  return out;
}

void Balancer::evaluate(const std::string& msg_id) {
  auto it = tasks_.find(msg_id);
  if (it == tasks_.end() || it->second.state != State::blocked) return;
  Task& t = it->second;
  std::string why;
  const Verdict after = check(t.flags.after, &why);
  const Verdict follow = after == Verdict::unreachable ? after : check(t.flags.follow, &why);
  if (after == Verdict::unreachable || follow == Verdict::unreachable) {
    fail_impossible(msg_id, why);
    return;
  }
  if (after == Verdict::met && follow == Verdict::met) make_ready(msg_id, t);
}

void Balancer::make_ready(const std::string& msg_id, Task& t) {
  std::string why;
  bool impossible = false;
  (void)allowed(t, &why, &impossible);
  if (impossible) {
    fail_impossible(msg_id, why);
    return;
  }
  t.state = State::ready;
  ready_.emplace(Key{-static_cast<std::int64_t>(t.flags.priority), t.seq}, msg_id);
}

void Balancer::requeue(const std::string& msg_id, Task& t, Clock::time_point now) {
  t.state = State::blocked;
  t.engine = -1;
  if (t.timeout) {
    t.deadline = now + *t.timeout;
    deadlines_.emplace(*t.deadline, msg_id);
  }
  make_ready(msg_id, t);
}

void Balancer::fail_impossible(const std::string& msg_id, const std::string& why) {
  auto it = tasks_.find(msg_id);
  if (it == tasks_.end()) return;
  const std::string task = it->second.task;
  fail(msg_id, record(ErrorCode::impossible_dependency, "ipp::ImpossibleDependency",
                      fmt::format("task '{}' cannot run: {}", task, why), task));
}

void Balancer::fail(const std::string& msg_id, ErrorRecord error) {
  auto it = tasks_.find(msg_id);
  if (it == tasks_.end()) return;
  Task& t = it->second;
  if (t.state == State::ready)
    ready_.erase(Key{-static_cast<std::int64_t>(t.flags.priority), t.seq});
  if (t.deadline) deadlines_.erase({*t.deadline, msg_id});
  if (t.state == State::running) {
    --running_count_;
    if (auto e = engines_.find(t.engine); e != engines_.end()) {
      --e->second.load;
      e->second.tasks.erase(msg_id);
    }
  }
  tasks_.erase(it);
  failures_.push_back({msg_id, std::move(error)});
  record_done(msg_id, false, -1);
}

void Balancer::record_done(const std::string& msg_id, bool ok, std::int64_t engine) {
  done_[msg_id] = Done{ok, engine};
  done_order_.push_back(msg_id);
  while (done_order_.size() > options_.remember) {
    done_.erase(done_order_.front());
    done_order_.pop_front();
  }
  if (auto d = dependents_.find(msg_id); d != dependents_.end()) {
    for (auto& waiting : d->second)
      to_evaluate_.push_back(std::move(waiting));
    dependents_.erase(d);
  }
}

void Balancer::settle() {
  // A failure can make its dependents fail in turn: a work list, not recursion.
  while (!to_evaluate_.empty()) {
    const std::string msg_id = std::move(to_evaluate_.back());
    to_evaluate_.pop_back();
    evaluate(msg_id);
  }
}

Balancer::Finish Balancer::finished(const std::string& msg_id, bool ok, Clock::time_point now) {
  auto it = tasks_.find(msg_id);
  if (it == tasks_.end() || it->second.state != State::running) return Finish::stale;
  Task& t = it->second;
  const std::int64_t engine = t.engine;
  --running_count_;
  if (auto e = engines_.find(engine); e != engines_.end()) {
    --e->second.load;
    e->second.tasks.erase(msg_id);
  }
  if (!ok && t.retries_left > 0) {
    --t.retries_left;
    t.tried.insert(engine);
    requeue(msg_id, t, now);
    return Finish::retry;
  }
  tasks_.erase(it);
  record_done(msg_id, ok, engine);
  settle();
  return Finish::done;
}

bool Balancer::abort(const std::string& msg_id) {
  auto it = tasks_.find(msg_id);
  if (it == tasks_.end() || it->second.state == State::running) return false;
  const std::string task = it->second.task;
  fail(msg_id, record(ErrorCode::aborted, "ipp::TaskAborted",
                      fmt::format("task '{}' was aborted before it ran", task), task));
  settle();
  return true;
}

std::optional<std::int64_t> Balancer::engine_of(const std::string& msg_id) const {
  auto it = tasks_.find(msg_id);
  if (it == tasks_.end() || it->second.state != State::running) return std::nullopt;
  return it->second.engine;
}

void Balancer::expire(Clock::time_point now) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const std::string msg_id = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    auto it = tasks_.find(msg_id);
    if (it == tasks_.end()) continue;
    Task& t = it->second;
    t.deadline.reset();
    if (t.state == State::running) continue;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*t.timeout).count();
    const std::string what = t.state == State::blocked ? "for its dependencies"
                                                       : "in the load-balanced queue without a "
                                                         "free engine";
    const std::string task = t.task;
    fail(msg_id, record(ErrorCode::timeout, "ipp::TaskTimeout",
                        fmt::format("task '{}' waited {} ms {}", task, ms, what), task));
  }
  settle();
}

std::optional<Clock::time_point> Balancer::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

// ---- placement ------------------------------------------------------------------------------

std::int64_t Balancer::pick(const std::optional<std::set<std::int64_t>>& allowed, const Task& t) {
  std::vector<std::pair<std::int64_t, const Engine*>> free;
  bool untried_exists = false;  // an allowed engine it has not failed on, free or not
  for (const auto& [id, e] : engines_) {
    if (e.draining || (allowed && allowed->count(id) == 0)) continue;
    const bool tried = t.tried.count(id) != 0;
    if (!tried) untried_exists = true;
    if (is_free(e) && !tried) free.emplace_back(id, &e);
  }
  if (free.empty()) {
    // A retry goes to a different engine while one exists; when it has been tried
    // everywhere, any engine will do.
    if (untried_exists || t.tried.empty()) return -1;
    for (const auto& [id, e] : engines_) {
      if (!e.draining && (!allowed || allowed->count(id) != 0) && is_free(e))
        free.emplace_back(id, &e);
    }
    if (free.empty()) return -1;
  }
  auto ratio = [](const Engine& e) { return static_cast<double>(e.load) / e.slots; };
  auto less_recent = [](const auto& a, const auto& b) {
    return a.second->last_used < b.second->last_used;
  };
  auto random_index = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  };
  switch (options_.scheme) {
    case Scheme::leastload:
      return std::min_element(free.begin(), free.end(),
                              [&](const auto& a, const auto& b) {
                                const double ra = ratio(*a.second), rb = ratio(*b.second);
                                return ra < rb || (ra == rb && less_recent(a, b));
                              })
          ->first;
    case Scheme::lru:
      return std::min_element(free.begin(), free.end(), less_recent)->first;
    case Scheme::plainrandom:
      return free[random_index(free.size())].first;
    case Scheme::twobin: {
      const auto& a = free[random_index(free.size())];
      const auto& b = free[random_index(free.size())];
      return less_recent(b, a) ? b.first : a.first;
    }
    case Scheme::weighted: {
      std::vector<double> weights;
      weights.reserve(free.size());
      for (const auto& f : free)
        weights.push_back(1.0 / (1e-6 + ratio(*f.second)));
      std::discrete_distribution<std::size_t> draw(weights.begin(), weights.end());
      const auto& a = free[draw(rng_)];
      const auto& b = free[draw(rng_)];
      return ratio(*b.second) < ratio(*a.second) ? b.first : a.first;
    }
  }
  return free.front().first;
}

void Balancer::place(const std::string& msg_id, Task& t, std::int64_t engine) {
  Engine& e = engines_.at(engine);
  ++e.load;
  e.last_used = ++clock_;
  e.tasks.insert(msg_id);
  t.state = State::running;
  t.engine = engine;
  if (t.deadline) {
    deadlines_.erase({*t.deadline, msg_id});
    t.deadline.reset();
  }
  ++running_count_;
  dispatches_.push_back({msg_id, engine});
}

void Balancer::schedule() {
  auto any_free = [&] {
    return std::any_of(engines_.begin(), engines_.end(),
                       [&](const auto& kv) { return is_free(kv.second); });
  };
  std::vector<std::pair<std::string, std::string>> impossible_ids;  // msg_id, why
  for (auto it = ready_.begin(); it != ready_.end() && any_free();) {
    Task& t = tasks_.at(it->second);
    std::string why;
    bool impossible = false;
    const auto where = allowed(t, &why, &impossible);
    if (impossible) {
      impossible_ids.emplace_back(it->second, std::move(why));
      ++it;
      continue;
    }
    const std::int64_t engine = pick(where, t);
    if (engine < 0) {
      ++it;  // restricted to busy engines: the next ready task may run elsewhere
      continue;
    }
    const std::string msg_id = it->second;
    it = ready_.erase(it);
    place(msg_id, t, engine);
  }
  for (const auto& [msg_id, why] : impossible_ids)
    fail_impossible(msg_id, why);
  settle();
}

}  // namespace ipp::sched
