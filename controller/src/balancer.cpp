#include "balancer.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <iterator>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace ipp::sched {

namespace {

const net::TaskFlags kNoFlags{};

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

const net::TaskFlags& Balancer::Task::flags() const {
  return extra ? extra->flags : kNoFlags;
}

Balancer::Balancer(BalancerOptions options) : options_(options), rng_(options.seed) {}
Balancer::Balancer(Balancer&&) noexcept = default;
Balancer& Balancer::operator=(Balancer&&) noexcept = default;
Balancer::~Balancer() = default;

// ---- capacity ----------------------------------------------------------------------------------

std::uint32_t Balancer::intern(const std::string& name) {
  auto it = name_index_.find(name);
  if (it == name_index_.end()) {
    std::uint32_t index = 0;
    if (!free_names_.empty()) {
      index = free_names_.back();
      free_names_.pop_back();
      names_[index].name = name;
    } else {
      index = static_cast<std::uint32_t>(names_.size());
      names_.push_back({name, 0});
    }
    it = name_index_.emplace(name, index).first;
  }
  ++names_[it->second].uses;
  return it->second;
}

Carried Balancer::erase(TaskMap::iterator it) {
  Name& n = names_[it->second.name];
  if (--n.uses == 0) {
    name_index_.erase(n.name);
    n.name.clear();
    free_names_.push_back(it->second.name);
  }
  Carried carried = std::move(it->second.carried);
  tasks_.erase(it);
  return carried;
}

Carried* Balancer::carried(TaskId msg_id) {
  auto it = tasks_.find(msg_id);
  return it == tasks_.end() ? nullptr : &it->second.carried;
}

bool Balancer::may_retry(TaskId msg_id) const {
  auto it = tasks_.find(msg_id);
  return it != tasks_.end() && it->second.retries_left > 0;
}

std::string Balancer::estimate_key(const std::string& task, bool is_map) {
  return is_map ? "map:" + task : task;
}

std::int64_t Balancer::estimate_us(const Task& t) const {
  if (options_.hwm != -1) return -1;
  auto it = estimates_.find(estimate_key(name_of(t), t.is_map));
  if (it == estimates_.end() || it->second.samples == 0) return -1;
  if (it->second.mean_us > static_cast<double>(options_.short_task.count())) return -1;
  return std::max<std::int64_t>(1, std::llround(it->second.mean_us));
}

bool Balancer::can_take(const Engine& e, std::int64_t estimate) const {
  if (e.draining) return false;
  if (options_.hwm == 0) return true;
  if (options_.hwm > 0) return e.load < options_.hwm;
  if (e.load < e.slots) return true;
  // Beyond one task per slot, only work known to be short, and only where everything held is
  // short too: a long task never waits behind them, nor they behind a long one.
  return estimate >= 0 && e.long_held == 0 && e.load < e.slots * options_.max_per_slot &&
         e.short_work_us + estimate <= options_.window.count() * e.slots;
}

bool Balancer::may_take_any(const Engine& e) const {
  if (e.draining) return false;
  if (options_.hwm == 0) return true;
  if (options_.hwm > 0) return e.load < options_.hwm;
  return e.load < e.slots || (e.long_held == 0 && e.load < e.slots * options_.max_per_slot);
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

void Balancer::hold(std::int64_t id) {
  auto it = engines_.find(id);
  if (it == engines_.end()) return;
  ++it->second.held;
  ++it->second.load;
  ++it->second.long_held;
}

void Balancer::release(std::int64_t id) {
  auto it = engines_.find(id);
  if (it == engines_.end() || it->second.held == 0) return;
  --it->second.held;
  --it->second.load;
  --it->second.long_held;
}

void Balancer::engine_drain(std::int64_t id) {
  if (auto it = engines_.find(id); it != engines_.end()) it->second.draining = true;
}

void Balancer::engine_tasks(std::int64_t id, const std::vector<std::string>& names, bool has) {
  for (const auto& name : names) {
    if (has) {
      providers_[name].insert(id);
      continue;
    }
    auto it = providers_.find(name);
    if (it == providers_.end()) continue;
    it->second.erase(id);
    if (it->second.empty()) providers_.erase(it);
  }
}

const std::set<std::int64_t>* Balancer::providers_of(const Task& t) const {
  if (providers_.empty()) return nullptr;
  auto it = providers_.find(name_of(t));
  return it == providers_.end() ? nullptr : &it->second;
}

void Balancer::engine_down(std::int64_t id, std::string_view reason, Clock::time_point now) {
  for (auto p = providers_.begin(); p != providers_.end();) {
    p->second.erase(id);
    p = p->second.empty() ? providers_.erase(p) : std::next(p);
  }
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
      if (!task.extra) task.extra = std::make_unique<Extra>();
      task.extra->tried.insert(id);
      requeue(msg_id, task, now);
      continue;
    }
    task.state = State::blocked;  // no longer running: fail() must not count it twice
    const std::string why =
        reason.empty() ? std::string() : fmt::format(" ({})", std::string(reason));
    fail(msg_id, make_error_record(ErrorCode::engine,
                                   fmt::format("engine {} died while running task '{}'{}", id,
                                               name_of(task), why),
                                   name_of(task), id));
  }
  // Ready tasks that must follow work done on that engine can no longer run.
  std::vector<std::pair<TaskId, std::string>> stranded;  // msg_id, why
  for (const auto& r : ready_) {
    auto t = tasks_.find(r.msg_id);
    if (t == tasks_.end() || t->second.state != State::ready || t->second.seq != r.seq ||
        t->second.flags().follow.empty())
      continue;
    std::string why;
    bool impossible = false;
    (void)allowed(t->second, &why, &impossible);
    if (impossible) stranded.emplace_back(r.msg_id, std::move(why));
  }
  for (const auto& [msg_id, why] : stranded)
    fail_impossible(msg_id, why);
  settle();
}

// ---- tasks ------------------------------------------------------------------------------------

void Balancer::submit(TaskId msg_id, const std::string& task, const net::TaskFlags& flags,
                      std::optional<Clock::duration> timeout, Clock::time_point now, bool is_map,
                      Carried carried) {
  auto invalid = [&](const std::string& why) {
    failures_.push_back({msg_id,
                         make_error_record(ErrorCode::invalid_dependency,
                                           fmt::format("task '{}' {}", task, why), task),
                         std::move(carried)});
    record_done(msg_id, false, -1);
    settle();
  };
  if (tasks_.count(msg_id) != 0 || done_.count(msg_id) != 0) {
    failures_.push_back(
        {msg_id,
         make_error_record(ErrorCode::usage,
                           fmt::format("msg_id {} was already submitted", msg_id.str()), task),
         std::move(carried)});
    return;
  }
  std::vector<TaskId> depends_on;
  for (const auto* dep : {&flags.after, &flags.follow}) {
    for (const auto& text : dep->ids) {
      const auto id = TaskId::parse(text);
      if (id && *id == msg_id) return invalid("depends on itself");
      if (!id || (tasks_.count(*id) == 0 && done_.count(*id) == 0)) {
        return invalid(fmt::format(
            "depends on msg_id {}, which is not a load-balanced task of this controller "
            "(or finished too long ago to be remembered)",
            text));
      }
      depends_on.push_back(*id);
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
          {msg_id,
           make_error_record(ErrorCode::impossible_dependency,
                             fmt::format("task '{}' cannot run: none of its target engines [{}] is "
                                         "registered (engines: {})",
                                         task, wanted, engine_list()),
                             task),
           std::move(carried)});
      record_done(msg_id, false, -1);
      settle();
      return;
    }
  }
  Task& t = tasks_[msg_id];
  t.name = intern(task);
  t.carried = std::move(carried);
  t.seq = ++seq_;
  t.priority = flags.priority;
  t.retries_left = std::max(0, flags.retries);
  t.is_map = is_map;
  if (!flags.after.empty() || !flags.follow.empty() || !flags.targets.empty() || timeout) {
    t.extra = std::make_unique<Extra>();
    t.extra->flags = flags;
    t.extra->timeout = timeout;
    if (timeout) {
      t.extra->deadline = now + *timeout;
      deadlines_.emplace(*t.extra->deadline, msg_id);
    }
  }
  for (const auto& id : depends_on) {
    if (done_.count(id) == 0) dependents_[id].push_back(msg_id);
  }
  to_evaluate_.push_back(msg_id);
  settle();
}

Balancer::Verdict Balancer::check(const net::Dependency& d, std::string* why) const {
  if (d.ids.empty()) return Verdict::met;
  std::size_t accepted = 0, rejected = 0;
  std::string first_rejected;
  for (const auto& text : d.ids) {
    const auto id = TaskId::parse(text);
    auto it = id ? done_.find(*id) : done_.end();
    if (it == done_.end()) continue;
    const bool ok = it->second.ok ? d.success : d.failure;
    if (ok) {
      ++accepted;
    } else {
      if (rejected++ == 0)
        first_rejected =
            fmt::format("task {} {}", id->str(), it->second.ok ? "succeeded" : "failed");
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
  if (!t.restricted()) return std::nullopt;
  const net::TaskFlags& flags = t.flags();
  std::optional<std::set<std::int64_t>> out;
  if (!flags.follow.empty()) {
    std::set<std::int64_t> where;
    for (const auto& text : flags.follow.ids) {
      const auto id = TaskId::parse(text);
      auto it = id ? done_.find(*id) : done_.end();
      if (it == done_.end() || it->second.engine < 0) continue;
      if (it->second.ok ? flags.follow.success : flags.follow.failure)
        where.insert(it->second.engine);
    }
    if (flags.follow.all && where.size() > 1) {
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
  if (!flags.targets.empty()) {
    std::set<std::int64_t> targets(flags.targets.begin(), flags.targets.end());
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

void Balancer::evaluate(TaskId msg_id) {
  auto it = tasks_.find(msg_id);
  if (it == tasks_.end() || it->second.state != State::blocked) return;
  Task& t = it->second;
  std::string why;
  const Verdict after = check(t.flags().after, &why);
  const Verdict follow = after == Verdict::unreachable ? after : check(t.flags().follow, &why);
  if (after == Verdict::unreachable || follow == Verdict::unreachable) {
    fail_impossible(msg_id, why);
    return;
  }
  if (after == Verdict::met && follow == Verdict::met) make_ready(msg_id, t);
}

void Balancer::make_ready(TaskId msg_id, Task& t) {
  std::string why;
  bool impossible = false;
  (void)allowed(t, &why, &impossible);
  if (impossible) {
    fail_impossible(msg_id, why);
    return;
  }
  t.state = State::ready;
  ++ready_count_;
  ready_.push_back({-static_cast<std::int64_t>(t.priority), t.seq, msg_id});
  std::push_heap(ready_.begin(), ready_.end());
}

void Balancer::requeue(TaskId msg_id, Task& t, Clock::time_point now) {
  t.state = State::blocked;
  t.engine = -1;
  if (t.extra && t.extra->timeout) {
    t.extra->deadline = now + *t.extra->timeout;
    deadlines_.emplace(*t.extra->deadline, msg_id);
  }
  make_ready(msg_id, t);
}

void Balancer::fail_impossible(TaskId msg_id, const std::string& why) {
  auto it = tasks_.find(msg_id);
  if (it == tasks_.end()) return;
  const std::string task = name_of(it->second);
  fail(msg_id, make_error_record(ErrorCode::impossible_dependency,
                                 fmt::format("task '{}' cannot run: {}", task, why), task));
}

void Balancer::release(TaskId msg_id, Task& t) {
  --running_count_;
  auto e = engines_.find(t.engine);
  if (e == engines_.end()) return;
  --e->second.load;
  if (t.charged_us >= 0)
    e->second.short_work_us -= t.charged_us;
  else
    --e->second.long_held;
  e->second.tasks.erase(msg_id);
}

void Balancer::fail(TaskId msg_id, ErrorRecord error) {
  auto it = tasks_.find(msg_id);
  if (it == tasks_.end()) return;
  Task& t = it->second;
  if (t.state == State::ready) --ready_count_;  // its heap entry is skipped from now on
  if (t.extra && t.extra->deadline) deadlines_.erase({*t.extra->deadline, msg_id});
  if (t.state == State::running) release(msg_id, t);
  failures_.push_back({msg_id, std::move(error), erase(it)});
  record_done(msg_id, false, -1);
}

void Balancer::record_done(TaskId msg_id, bool ok, std::int64_t engine) {
  done_[msg_id] = Done{ok, engine};
  done_order_.push_back(msg_id);
  while (done_order_.size() > options_.remember) {
    done_.erase(done_order_.front());
    done_order_.pop_front();
  }
  if (auto d = dependents_.find(msg_id); d != dependents_.end()) {
    for (auto& waiting : d->second)
      to_evaluate_.push_back(waiting);
    dependents_.erase(d);
  }
}

void Balancer::settle() {
  // A failure can make its dependents fail in turn: a work list, not recursion.
  while (!to_evaluate_.empty()) {
    const TaskId msg_id = to_evaluate_.back();
    to_evaluate_.pop_back();
    evaluate(msg_id);
  }
}

Balancer::Finish Balancer::finished(TaskId msg_id, bool ok, Clock::time_point now,
                                    std::optional<std::chrono::microseconds> ran,
                                    Carried* carried) {
  auto it = tasks_.find(msg_id);
  if (it == tasks_.end() || it->second.state != State::running) return Finish::stale;
  Task& t = it->second;
  if (ran && ran->count() >= 0) {
    if (estimates_.size() > 4096) estimates_.clear();  // any name may come: stay bounded
    Estimate& e = estimates_[estimate_key(name_of(t), t.is_map)];
    const auto us = static_cast<double>(ran->count());
    e.mean_us = e.samples == 0 ? us : 0.75 * e.mean_us + 0.25 * us;
    ++e.samples;
  }
  const std::int64_t engine = t.engine;
  release(msg_id, t);
  if (!ok && t.retries_left > 0) {
    --t.retries_left;
    if (!t.extra) t.extra = std::make_unique<Extra>();
    t.extra->tried.insert(engine);
    requeue(msg_id, t, now);
    return Finish::retry;
  }
  Carried out = erase(it);
  if (carried != nullptr) *carried = std::move(out);
  record_done(msg_id, ok, engine);
  settle();
  return Finish::done;
}

bool Balancer::abort(TaskId msg_id) {
  auto it = tasks_.find(msg_id);
  if (it == tasks_.end() || it->second.state == State::running) return false;
  const std::string task = name_of(it->second);
  fail(msg_id, make_error_record(ErrorCode::aborted,
                                 fmt::format("task '{}' was aborted before it ran", task), task));
  settle();
  return true;
}

std::optional<std::int64_t> Balancer::engine_of(TaskId msg_id) const {
  auto it = tasks_.find(msg_id);
  if (it == tasks_.end() || it->second.state != State::running) return std::nullopt;
  return it->second.engine;
}

void Balancer::expire(Clock::time_point now) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const TaskId msg_id = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    auto it = tasks_.find(msg_id);
    if (it == tasks_.end() || !it->second.extra) continue;
    Task& t = it->second;
    t.extra->deadline.reset();
    if (t.state == State::running) continue;
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(*t.extra->timeout).count();
    const std::string what = t.state == State::blocked ? "for its dependencies"
                                                       : "in the load-balanced queue without a "
                                                         "free engine";
    const std::string task = name_of(t);
    fail(msg_id, make_error_record(ErrorCode::timeout,
                                   fmt::format("task '{}' waited {} ms {}", task, ms, what), task));
  }
  settle();
}

std::optional<Clock::time_point> Balancer::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

}  // namespace ipp::sched
