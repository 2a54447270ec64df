#include "client_core.hpp"

namespace ipp {

// ---- Client --------------------------------------------------------------------------------

Client::Client(ClientOptions options) : core_(std::make_shared<detail::ClientCore>(options)) {
  core_->self = core_;
}

ControlSummary Client::abort(const std::vector<std::string>& msg_ids) const {
  return detail::control(*core_, "abort", msg_ids);
}

ControlSummary Client::cancel(const std::vector<std::string>& msg_ids) const {
  return detail::control(*core_, "cancel", msg_ids);
}
Client::~Client() = default;

std::vector<std::int64_t> Client::ids() const {
  return core_->query("ids").as<std::vector<std::int64_t>>();
}

DirectView Client::operator[](std::int64_t id) const {
  return DirectView(core_, {id}, true);
}

DirectView Client::operator[](const std::vector<std::int64_t>& targets) const {
  return DirectView(core_, targets, false);
}

DirectView Client::direct_view() const {
  return DirectView(core_, ids(), false);
}

LoadBalancedView Client::load_balanced_view() const {
  return LoadBalancedView(core_);
}

Value Client::push_plugin(const std::filesystem::path& file) const {
  // Say what is wrong with the path itself, not what a stream reading it reports.
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw PluginLoadError(fmt::format("'{}' is a directory, not a plugin file", file.string()));
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw PluginLoadError(
        fmt::format("cannot read '{}': {}", file.string(),
                    std::filesystem::exists(file, ec) ? "permission denied" : "no such file"));
  }
  std::vector<std::uint8_t> bytes;
  try {
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception& e) {
    throw PluginLoadError(fmt::format("cannot read '{}': {}", file.string(), e.what()));
  }
  net::Header h;
  h.type = net::MsgType::PushRequest;
  h.msg_id = net::new_id();
  h.task = file.stem().string();
  h.info = Value::map({{"file", file.filename().string()}});  // named so in refusals
  // Engines load the plugin before the reply comes back: allow more than a query's time.
  auto [reply, payload] =
      core_->request(detail::kRegistration, h,
                     encode(Value(Bytes{Buffer::adopt(std::move(bytes))})), core_->timeout * 6);
  if (reply.error) {
    if (reply.error->code == ErrorCode::plugin_load) throw PluginLoadError(reply.error->message);
    rethrow(*reply.error);
  }
  return reply.info.kind() == Value::Kind::map ? reply.info["engines"] : Value();
}

Value Client::unload_plugin(const std::string& name) const {
  if (name.empty()) throw UsageError("unload: no plugin name given");
  net::Header h;
  h.type = net::MsgType::PushRequest;
  h.msg_id = net::new_id();
  h.task = name;
  h.info = Value::map({{"unload", true}});
  auto [reply, payload] = core_->request(detail::kRegistration, h, Payload{}, core_->timeout * 6);
  if (reply.error) {
    if (reply.error->code == ErrorCode::usage) throw UsageError(reply.error->message);
    rethrow(*reply.error);
  }
  return reply.info.kind() == Value::Kind::map ? reply.info["engines"] : Value();
}

Value Client::plugins() const {
  return core_->query("plugins");
}
Value Client::queue_status() const {
  return core_->query("queue_status");
}
Value Client::engines() const {
  return core_->query("engines");
}
bool Client::wait(std::optional<Duration> timeout) const {
  return core_->wait_all(timeout);
}
void Client::shutdown() const {
  (void)core_->query("shutdown");
}

}  // namespace ipp
