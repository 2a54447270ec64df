#include <thread>

#include "client_core.hpp"
#include "sequences.hpp"

namespace ipp {

// ---- AsyncResult ---------------------------------------------------------------------------

bool AsyncResult::wait(std::optional<Duration> timeout) const {
  std::unique_lock lock(state_->mutex);
  auto done = [&] { return state_->remaining == 0; };
  if (!timeout) {
    state_->cv.wait(lock, done);
    return true;
  }
  return state_->cv.wait_for(lock, *timeout, done);
}

bool AsyncResult::ready() const {
  std::lock_guard lock(state_->mutex);
  return state_->remaining == 0;
}

AsyncResult::Progress AsyncResult::progress() const {
  std::lock_guard lock(state_->mutex);
  return {state_->slots.size() - state_->remaining, state_->slots.size()};
}

bool AsyncResult::successful() const {
  std::lock_guard lock(state_->mutex);
  if (state_->remaining != 0)
    throw UsageError("AsyncResult::successful() called before the result is ready");
  return std::none_of(state_->slots.begin(), state_->slots.end(),
                      [](const auto& s) { return s->reply.error.has_value(); });
}

std::vector<std::string> AsyncResult::msg_ids() const {
  std::lock_guard lock(state_->mutex);
  std::vector<std::string> out;
  for (const auto& s : state_->slots)
    out.push_back(s->msg_id);
  return out;
}

std::vector<TaskMetadata> AsyncResult::metadata() const {
  const auto core = state_->core.lock();
  // This client's own times, in the controller's clock as the engine's start and end are: a
  // task may be done before the client's first measurement of that clock (sent when it
  // connected) comes back from a busy hub, so wait a little for it.
  if (core) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (core->clock.rtt_us() < 0 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::lock_guard lock(state_->mutex);
  const std::int64_t offset = core ? core->clock.significant_offset_us() : 0;
  const auto in_controller_time = [offset](std::int64_t t) { return t != 0 ? t + offset : 0; };
  std::vector<TaskMetadata> out;
  const auto printed = [](const detail::Reply& reply, const char* stream) {
    if (reply.info.kind() != Value::Kind::map) return std::string();
    const auto& m = reply.info.as_map();
    const auto it = m.find(stream);
    return it != m.end() && it->second.kind() == Value::Kind::string ? it->second.as_string()
                                                                     : std::string();
  };
  for (const auto& s : state_->slots) {
    out.push_back({s->msg_id, s->done ? s->reply.engine : s->target,
                   in_controller_time(s->submitted), s->reply.started, s->reply.completed,
                   in_controller_time(s->received), printed(s->reply, "stdout"),
                   printed(s->reply, "stderr")});
  }
  return out;
}

namespace {
void control_result(const std::shared_ptr<detail::ResultState>& state, const char* what) {
  std::shared_ptr<detail::ClientCore> core;
  std::vector<std::string> ids;
  {
    std::lock_guard lock(state->mutex);
    core = state->core.lock();
    for (const auto& s : state->slots) {
      if (!s->done) ids.push_back(s->msg_id);
    }
  }
  if (ids.empty()) return;  // finished: nothing to stop
  if (!core) throw UsageError(fmt::format("{}: the client of this result is gone", what));
  (void)detail::control(*core, what, ids);
}
}  // namespace

void AsyncResult::abort() const {
  control_result(state_, "abort");
}

void AsyncResult::cancel() const {
  control_result(state_, "cancel");
}

Value AsyncResult::get(std::optional<Duration> timeout) const {
  if (!wait(timeout)) {
    throw TimeoutError(fmt::format("result not ready after {} ms ({} of {} tasks done)",
                                   timeout->count(), state_->slots.size() - state_->remaining,
                                   state_->slots.size()));
  }
  std::lock_guard lock(state_->mutex);
  std::vector<ErrorRecord> errors;
  for (const auto& s : state_->slots) {
    if (s->reply.error) errors.push_back(*s->reply.error);
  }
  if (errors.size() == 1 && state_->slots.size() == 1) rethrow(errors[0]);
  if (!errors.empty()) throw CompositeError(std::move(errors));
  std::vector<Value> values;
  values.reserve(state_->slots.size());
  for (const auto& s : state_->slots) {
    Value v = s->payload.root.empty() ? Value() : decode(s->payload);
    if (state_->unwrap && v.kind() == Value::Kind::list && v.size() == 1) {
      Value first = std::move(v.as_list()[0]);
      v = std::move(first);
    }
    values.push_back(std::move(v));
  }
  switch (state_->combine) {
    case detail::Combine::single:
      return values.at(0);
    case detail::Combine::per_engine:
      return Value(Value::List(std::move(values)));
    case detail::Combine::gather:
      return detail::concatenate(std::move(values));
  }
  return Value();
}

}  // namespace ipp
