#include "cluster_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>

#include <fmt/format.h>
#include "ipp/net/json_text.hpp"

namespace ipp::ctl {

namespace {

/// An exclusive flock held for the object's life.
class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& path)
      : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

std::optional<nlohmann::ordered_json> parse(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  try {
    auto j = nlohmann::ordered_json::parse(in);
    if (!j.is_object()) return std::nullopt;
    return j;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::optional<ClusterFile> cluster_of(nlohmann::ordered_json j) {
  try {
    ClusterFile c;
    c.controller = j.at("controller").get<pid_t>();
    c.supervisor = j.value("supervisor", -1);
    if (j.contains("engines")) c.engines = j.at("engines").get<std::vector<pid_t>>();
    c.doc = std::move(j);
    return c;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace

std::optional<ClusterFile> read_cluster(const std::filesystem::path& profile) {
  auto j = parse(profile / "cluster.json");
  if (!j) return std::nullopt;
  return cluster_of(std::move(*j));
}

std::optional<ClusterFile> update_cluster(
    const std::filesystem::path& profile,
    const std::function<void(nlohmann::ordered_json&)>& change) {
  FileLock lock(profile / "cluster.lock");
  auto j = parse(profile / "cluster.json").value_or(nlohmann::ordered_json::object());
  change(j);
  const auto tmp = profile / fmt::format("cluster.json.{}", ::getpid());
  {
    std::ofstream out(tmp);
    out << json_text(j, 2) << "\n";
  }
  std::error_code ec;
  std::filesystem::rename(tmp, profile / "cluster.json", ec);
  if (ec) std::filesystem::remove(tmp, ec);
  return cluster_of(std::move(j));
}

}  // namespace ipp::ctl
