// Runs the dltool binary under test (DLTOOL_BINARY, defined for app_tests) from CLI tests.
#pragma once
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace dl::test {

// `dltool ARGS`: stdout and stderr together in `out`, killed after 5 minutes, stdin /dev/null.
inline ProcessResult run_dltool(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {DLTOOL_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, {.merge_stderr = true, .timeout_s = 300});
}

}  // namespace dl::test
