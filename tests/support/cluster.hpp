#pragma once

// A controller and engines as real processes on loopback, for integration tests.

#include <chrono>
#include <memory>
#include <thread>

#include <gtest/gtest.h>

#include "ipp/net/connection_file.hpp"
#include "ipp/net/shm.hpp"
#include "support/paths.hpp"
#include "support/process.hpp"
#include "support/raw_client.hpp"

namespace ipp::test {

using namespace std::chrono_literals;

class Cluster : public ::testing::Test {
 protected:
  /// Stops what is still running; a controller a test killed cannot remove its shared memory
  /// (`/dev/shm/ipp-...`), so the test does, as the next controller of the profile would.
  ~Cluster() override {
    client_.reset();
    engines_.clear();
    controller_.reset();
    try {
      const auto info = net::read_connection_file(dir_ / net::kClientFile);
      if (!info.shm_dir.empty()) net::SharedMemory::remove(info.shm_dir);
    } catch (const std::exception&) {
      // no controller ever started, or its files are gone with it
    }
  }
  void start(int engines, int threads = 2, const std::vector<std::string>& controller_args = {}) {
    std::vector<std::string> argv = controller_launcher_;
    for (const std::string& a :
         {binary("ippcontroller"), std::string("--profile-dir"), dir_.path().string(),
          std::string("--heartbeat-ms"), std::string("1000"), std::string("--log-level"),
          std::string("warn")})
      argv.push_back(a);
    argv.insert(argv.end(), controller_args.begin(), controller_args.end());
    controller_ = std::make_unique<Process>(argv, (dir_ / "controller.log").string());
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!std::filesystem::exists(dir_ / net::kClientFile)) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "controller did not start";
      std::this_thread::sleep_for(5ms);
    }
    client_ = std::make_unique<RawClient>(dir_.path());
    for (int i = 0; i < engines; ++i)
      add_engine(threads);
    wait_for_engines(engines);
  }
  void add_engine(int threads = 2, const std::vector<std::string>& engine_args = {}) {
    std::vector<std::string> argv{binary("ippengine"),
                                  "--profile-dir",
                                  dir_.path().string(),
                                  "--threads",
                                  std::to_string(threads),
                                  "--log-level",
                                  "warn"};
    argv.insert(argv.end(), engine_args.begin(), engine_args.end());
    engines_.push_back(std::make_unique<Process>(argv));
  }
  void wait_for_engines(std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (client_->query("ids").value.size() != n) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "engines did not register";
      std::this_thread::sleep_for(10ms);
    }
  }
  /// The process running engine `id` (engines register concurrently, so ids need not follow
  /// start order).
  Process& engine_process(std::int64_t id) {
    const Value engines = client_->query("engines").value;
    for (const auto& e : engines.as_list()) {
      if (e["id"].as_int() != id) continue;
      for (auto& p : engines_) {
        if (p->pid() == e["pid"].as_int()) return *p;
      }
    }
    throw std::runtime_error("no process for engine " + std::to_string(id));
  }
  TempDir dir_;
  /// Runs the controller through this command (e.g. prlimit) when not empty; it must exec.
  std::vector<std::string> controller_launcher_;
  std::unique_ptr<Process> controller_;
  std::vector<std::unique_ptr<Process>> engines_;
  std::unique_ptr<RawClient> client_;
};

}  // namespace ipp::test
