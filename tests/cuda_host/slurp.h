/* slurp.h: a whole file into memory, for the host programs of tests/test_cuda.py. */
#ifndef APPROXSIM_TESTS_SLURP_H_
#define APPROXSIM_TESTS_SLURP_H_

#include <cstdio>
#include <cstdlib>
#include <vector>

static std::vector<char> slurp(const char* path) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    perror(path);
    exit(2);
  }
  std::vector<char> v;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) v.insert(v.end(), buf, buf + n);
  fclose(f);
  return v;
}

#endif /* APPROXSIM_TESTS_SLURP_H_ */
