// Skipping a test that cannot run on this machine (an optional tool is missing).
//
//   TEST_CASE("...", "[onnxruntime]") {
//     DLTOOL_SKIP_IF(!why.empty(), why);   // in the test body itself: it returns from it
//
// Under ctest every app_tests case runs in its own process, and CMake gives those entries
// DLTOOL_SKIP_EXIT_CODE=4 in their environment and SKIP_RETURN_CODE 4: the process prints the
// reason on stderr and exits with code 4, which ctest reports as "Skipped" (the mechanism of the
// [cuda] engine tests). Run directly (build/app_tests "[onnxruntime]"), the variable is unset:
// the test WARNs the reason and returns, and the rest of the run goes on.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>

namespace dl::test {

// Exits with $DLTOOL_SKIP_EXIT_CODE after printing `why`, when that variable is set.
inline void exit_if_skipping_is_an_exit_code(const std::string& why) {
  const char* code = std::getenv("DLTOOL_SKIP_EXIT_CODE");
  if (!code || !*code) return;
  std::fprintf(stderr, "SKIPPED: %s\n", why.c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  std::exit(std::atoi(code));
}

}  // namespace dl::test

#define DLTOOL_SKIP(why)                                   \
  do {                                                     \
    const std::string dl_skip_why_ = (why);                \
    ::dl::test::exit_if_skipping_is_an_exit_code(dl_skip_why_); \
    WARN("SKIPPED: " << dl_skip_why_);                     \
    return;                                                \
  } while (0)

#define DLTOOL_SKIP_IF(cond, why) \
  do {                            \
    if (cond) DLTOOL_SKIP(why);   \
  } while (0)
