// Connection files (written by a controller, read by every client and engine, and maybe
// edited by hand): any bytes read as a connection or fail with an Error naming the file.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "ipp/error.hpp"
#include "ipp/net/connection_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("ipp-fuzz-" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const ipp::net::ConnectionInfo info = ipp::net::read_connection_file(file);
    (void)info.endpoint("registration");
  } catch (const ipp::Error&) {
  }
  return 0;
}
