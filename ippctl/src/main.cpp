// ippctl: the command line for ipp clusters.
#include "ippctl.hpp"

int main(int argc, char** argv) {
  return ipp::ctl::run(argc, argv);
}
