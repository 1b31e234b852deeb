// DataError: a problem with the user's data files (missing, unreadable, truncated, corrupt,
// inconsistent). The message always names the file and the problem; the CLI maps it to exit
// code 1 (runtime failure), unlike configuration errors (exit code 2).
#pragma once
#include <stdexcept>
#include <string>

namespace dl {

class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace dl
