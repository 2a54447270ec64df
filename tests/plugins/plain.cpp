// An ordinary shared library with no ipp manifest.
extern "C" int plain_function() {
  return 42;
}
