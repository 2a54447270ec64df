#include "client_core.hpp"
#include "sequences.hpp"

namespace ipp {

// ---- views ---------------------------------------------------------------------------------

DirectView DirectView::with(const TaskFlags& flags) const {
  const char* refused = flags.timeout            ? "timeout"
                        : flags.retries != 0     ? "retries"
                        : !flags.after.empty()   ? "after"
                        : !flags.follow.empty()  ? "follow"
                        : !flags.targets.empty() ? "targets"
                        : flags.priority != 0    ? "priority"
                                                 : nullptr;
  if (refused != nullptr) {
    throw UsageError(
        fmt::format("'{}' is a load-balancing flag; a direct view takes only time_limit", refused));
  }
  DirectView v = *this;
  v.time_limit_ = flags.time_limit;
  return v;
}

AsyncResult DirectView::apply_async(const std::string& task, const Value::List& args) const {
  if (targets_.empty()) throw UsageError("this view has no engines");
  auto state = detail::new_state(single_ ? detail::Combine::single : detail::Combine::per_engine,
                                 targets_.size());
  const Payload payload = encode(Value(args));
  for (auto t : targets_) {
    detail::send_task(*core_, state, detail::kDirect, net::MsgType::ApplyRequest, t, task, payload,
                      {}, {}, {.time_limit = time_limit_});
  }
  return AsyncResult(state);
}

Value DirectView::apply_sync(const std::string& task, const Value::List& args) const {
  if (targets_.size() != 1) return apply_async(task, args).get();
  auto state =
      detail::new_state(single_ ? detail::Combine::single : detail::Combine::per_engine, 1);
  detail::send_task(*core_, state, detail::kDirect, net::MsgType::ApplyRequest, targets_[0], task,
                    encode(Value(args)), {}, {}, {.time_limit = time_limit_}, true);
  return AsyncResult(state).get();
}

AsyncResult DirectView::map_async(const std::string& task, const Value::List& sequences) const {
  return map_impl(task, sequences, {});
}

AsyncResult DirectView::map_impl(const std::string& task, const Value::List& sequences,
                                 const std::string& bind) const {
  if (targets_.empty()) throw UsageError("this view has no engines");
  const std::uint64_t n = detail::common_length(sequences).value_or(0);
  const std::uint64_t engines = targets_.size();
  auto state = detail::new_state(detail::Combine::gather, engines);
  for (std::uint64_t i = 0; i < engines; ++i) {
    const auto [begin, end] = detail::block(n, engines, i);
    Value::List part;
    for (const auto& s : sequences)
      part.push_back(detail::block_of(s, begin, end));
    detail::send_task(*core_, state, detail::kDirect, net::MsgType::MapRequest, targets_[i], task,
                      encode(Value(std::move(part))), bind, {}, {.time_limit = time_limit_});
  }
  return AsyncResult(state);
}

Value DirectView::map(const std::string& task, const Value::List& sequences) const {
  return map_async(task, sequences).get();
}

AsyncResult DirectView::apply_to_async(const std::string& name, const std::string& task,
                                       const Value::List& args) const {
  if (targets_.empty()) throw UsageError("this view has no engines");
  if (name.empty()) throw UsageError("apply_to needs a name to bind the result to");
  auto state = detail::new_state(single_ ? detail::Combine::single : detail::Combine::per_engine,
                                 targets_.size());
  const Payload payload = encode(Value(args));
  for (auto t : targets_) {
    detail::send_task(*core_, state, detail::kDirect, net::MsgType::ApplyRequest, t, task, payload,
                      name, {}, {.time_limit = time_limit_});
  }
  return AsyncResult(state);
}

void DirectView::apply_to(const std::string& name, const std::string& task,
                          const Value::List& args) const {
  (void)apply_to_async(name, task, args).get();
}

AsyncResult DirectView::map_to_async(const std::string& name, const std::string& task,
                                     const Value::List& sequences) const {
  if (name.empty()) throw UsageError("map_to needs a name to bind the results to");
  return map_impl(task, sequences, name);
}

void DirectView::map_to(const std::string& name, const std::string& task,
                        const Value::List& sequences) const {
  (void)map_to_async(name, task, sequences).get();
}

// ---- namespaces ----------------------------------------------------------------------------

/// Sends one NamespaceRequest per target: payloads[i] to targets_[i] (or payloads[0] to all).
AsyncResult DirectView::namespace_request(const std::string& op, const std::vector<Value>& payloads,
                                          int combine, bool unwrap) const {
  if (targets_.empty()) throw UsageError("this view has no engines");
  auto state = detail::new_state(static_cast<detail::Combine>(combine), targets_.size());
  state->unwrap = unwrap;
  std::vector<Payload> encoded;
  for (const auto& p : payloads)
    encoded.push_back(p.is_null() ? Payload{} : encode(p));
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    detail::send_task(*core_, state, detail::kDirect, net::MsgType::NamespaceRequest, targets_[i],
                      op, encoded.size() == 1 ? encoded[0] : encoded.at(i));
  }
  return AsyncResult(state);
}

namespace {
void check_name(const std::string& name) {
  if (name.empty()) throw UsageError("a namespace name cannot be empty");
}
int per_view(bool single) {
  return static_cast<int>(single ? detail::Combine::single : detail::Combine::per_engine);
}
}  // namespace

AsyncResult DirectView::push_async(const Value::Map& values) const {
  for (const auto& [name, value] : values) {
    check_name(name);
    if (value.kind() == Value::Kind::ref)
      throw ArgumentError(fmt::format("push: cannot bind '{}' to a reference", name));
  }
  return namespace_request("push", {Value(values)}, per_view(single_));
}

void DirectView::push(const Value::Map& values) const {
  (void)push_async(values).get();
}

AsyncResult DirectView::pull_async(const std::string& name) const {
  check_name(name);
  return namespace_request("pull", {Value(Value::List{Value(name)})}, per_view(single_), true);
}

Value DirectView::pull(const std::string& name) const {
  return pull_async(name).get();
}

AsyncResult DirectView::pull_async(const std::vector<std::string>& names) const {
  Value::List list;
  for (const auto& n : names) {
    check_name(n);
    list.emplace_back(n);
  }
  return namespace_request("pull", {Value(std::move(list))}, per_view(single_));
}

Value DirectView::pull(const std::vector<std::string>& names) const {
  return pull_async(names).get();
}

NamespaceItem DirectView::operator[](std::string name) const {
  check_name(name);
  return NamespaceItem(*this, std::move(name));
}

AsyncResult DirectView::scatter_async(const std::string& name, const Value& sequence) const {
  check_name(name);
  if (targets_.empty()) throw UsageError("this view has no engines");
  if (sequence.kind() != Value::Kind::list && sequence.kind() != Value::Kind::array &&
      sequence.kind() != Value::Kind::range) {
    throw ArgumentError(fmt::format("scatter needs a sequence (list, array or range), got {}",
                                    sequence.type_name()));
  }
  const std::uint64_t n = sequence.size();
  std::vector<Value> parts;
  for (std::uint64_t i = 0; i < targets_.size(); ++i) {
    const auto [begin, end] = detail::block(n, targets_.size(), i);
    parts.push_back(Value::map({{name, detail::slice(sequence, begin, end)}}));
  }
  return namespace_request("push", parts, static_cast<int>(detail::Combine::per_engine));
}

void DirectView::scatter(const std::string& name, const Value& sequence) const {
  (void)scatter_async(name, sequence).get();
}

AsyncResult DirectView::gather_async(const std::string& name) const {
  check_name(name);
  return namespace_request("pull", {Value(Value::List{Value(name)})},
                           static_cast<int>(detail::Combine::gather), true);
}

Value DirectView::gather(const std::string& name) const {
  return gather_async(name).get();
}

AsyncResult DirectView::clear_async() const {
  return namespace_request("clear", {Value()}, per_view(single_));
}

void DirectView::clear() const {
  (void)clear_async().get();
}

AsyncResult DirectView::execute(const std::string& code) const {
  if (targets_.empty()) throw UsageError("this view has no engines");
  auto state = detail::new_state(single_ ? detail::Combine::single : detail::Combine::per_engine,
                                 targets_.size());
  const Payload payload = encode(Value(code));
  for (auto t : targets_) {
    detail::send_task(*core_, state, detail::kDirect, net::MsgType::ExecuteRequest, t, "execute",
                      payload);
  }
  return AsyncResult(state);
}

AsyncResult LoadBalancedView::apply_async(const std::string& task, const Value::List& args) const {
  auto state = detail::new_state(detail::Combine::single, 1);
  detail::send_task(*core_, state, detail::kBalanced, net::MsgType::ApplyRequest, -1, task,
                    encode(Value(args)), {}, {}, flags_);
  return AsyncResult(state);
}

Value LoadBalancedView::apply_sync(const std::string& task, const Value::List& args) const {
  auto state = detail::new_state(detail::Combine::single, 1);
  detail::send_task(*core_, state, detail::kBalanced, net::MsgType::ApplyRequest, -1, task,
                    encode(Value(args)), {}, {}, flags_, true);
  return AsyncResult(state).get();
}

AsyncResult LoadBalancedView::map_async(const std::string& task, const Value::List& sequences,
                                        std::uint64_t chunksize) const {
  for (const auto& s : sequences) {
    if (s.kind() == Value::Kind::ref) {
      throw UsageError(
          fmt::format("map: ipp::ref('{}') cannot be split over a load-balanced view, whose "
                      "engines are chosen later; use a DirectView",
                      s.as_ref().name));
    }
  }
  const std::uint64_t n = detail::common_length(sequences).value_or(0);
  if (chunksize == 0) {
    const auto engines = std::max<std::uint64_t>(1, core_->query("ids").size());
    chunksize = std::max<std::uint64_t>(1, (n + engines * 4 - 1) / (engines * 4));
  }
  const std::uint64_t chunks = n == 0 ? 1 : (n + chunksize - 1) / chunksize;
  auto state = detail::new_state(detail::Combine::gather, chunks);
  for (std::uint64_t c = 0; c < chunks; ++c) {
    const std::uint64_t begin = std::min(n, c * chunksize);
    const std::uint64_t end = std::min(n, begin + chunksize);
    Value::List block;
    for (const auto& s : sequences)
      block.push_back(detail::block_of(s, begin, end));
    detail::send_task(*core_, state, detail::kBalanced, net::MsgType::MapRequest, -1, task,
                      encode(Value(std::move(block))), {}, {}, flags_);
  }
  return AsyncResult(state);
}

Value LoadBalancedView::map(const std::string& task, const Value::List& sequences,
                            std::uint64_t chunksize) const {
  return map_async(task, sequences, chunksize).get();
}

}  // namespace ipp
