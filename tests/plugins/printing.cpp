// Tasks that print, to test that what a task prints comes back with its result.
#include <cstdio>
#include <iostream>
#include <string>

#include <ipp/plugin.hpp>

namespace {

/// Prints `text` to stdout three ways and to stderr once; returns its length.
std::int64_t say(std::string text) {
  std::printf("printf %s\n", text.c_str());
  std::puts(("puts " + text).c_str());
  std::cout << "cout " << text << std::endl;
  std::cerr << "cerr " << text << "\n";
  return static_cast<std::int64_t>(text.size());
}

/// For a map: prints the element, from whichever pool thread runs its block.
std::int64_t say_each(std::int64_t i) {
  std::printf("element %lld\n", static_cast<long long>(i));
  return i;
}

/// Prints `lines` lines of 100 bytes.
std::int64_t shout(std::int64_t lines) {
  const std::string line(99, 'x');
  for (std::int64_t i = 0; i < lines; ++i)
    std::printf("%s\n", line.c_str());
  return lines;
}

}  // namespace

IPP_TASK(say)
IPP_TASK(say_each)
IPP_TASK(shout)
