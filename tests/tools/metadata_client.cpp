// A client that runs `mul 6 7` on engine 0 of the cluster in PROFILE and prints the task's
// metadata: "submitted started completed received" (microseconds). Tests run it under a
// clock that is wrong on purpose (faketime).
#include <iostream>

#include "ipp/client.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: ipp-test-metadata PROFILE\n";
    return 2;
  }
  try {
    ipp::Client rc(ipp::ClientOptions{.profile_dir = argv[1]});
    ipp::AsyncResult r = rc[0].apply_async("mul", {6, 7});
    if (r.get(std::chrono::seconds(30)) != ipp::Value(42)) return 1;
    const ipp::TaskMetadata m = r.metadata().at(0);
    std::cout << m.submitted << " " << m.started << " " << m.completed << " " << m.received << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
