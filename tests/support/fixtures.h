// PyTorch fixtures for tests: small text files under tests/fixtures/, written by the generator
// scripts beside them (tests/fixtures/gen_*.py, run with Debian's /usr/bin/python3 + torch).
//
// Format (one record per line, whitespace separated):
//   case NAME
//   attr KEY VALUE...          (VALUE is the rest of the line)
//   tensor KEY DTYPE NDIM DIM... VALUE...   (DTYPE: f32 f64 i64 bool; row-major values)
//   end
#pragma once
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "engine/ops.h"

namespace dl::test {

struct FixtureCase {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::map<std::string, Tensor> tensors;

  bool has(const std::string& key) const { return attrs.count(key) || tensors.count(key); }
  const std::string& attr(const std::string& key) const;
  double attr_f(const std::string& key) const;
  int64_t attr_i(const std::string& key) const;
  std::vector<int64_t> attr_ints(const std::string& key) const;
  const Tensor& t(const std::string& key) const;
};

// Loads tests/fixtures/<name> (relative to the source tree).
std::vector<FixtureCase> load_fixtures(const std::string& name);
const FixtureCase& find_case(const std::vector<FixtureCase>& cases, const std::string& name);
std::string source_path(const std::string& relative);

// Max abs/rel difference report; true when |a - b| <= atol + rtol * |b| everywhere.
bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol, std::string* report = nullptr);

// Runs the test body with a device: the test is skipped (exit code 4 for ctest) when no GPU.
bool have_cuda();

}  // namespace dl::test

// First line of a [cuda] test: without a usable GPU the test process exits with code 4, which
// ctest reports as "Skipped" (SKIP_RETURN_CODE in CMakeLists.txt).
#define REQUIRE_CUDA_DEVICE()                    \
  do {                                           \
    if (!::dl::test::have_cuda()) std::exit(4); \
  } while (0)

// CHECK that two tensors match (same shape, close values), printing the worst element.
#define CHECK_CLOSE(a, b, rtol, atol)                                       \
  do {                                                                      \
    std::string dl_report_;                                                 \
    bool dl_ok_ = ::dl::test::allclose((a), (b), (rtol), (atol), &dl_report_); \
    INFO(dl_report_);                                                       \
    CHECK(dl_ok_);                                                          \
  } while (0)
