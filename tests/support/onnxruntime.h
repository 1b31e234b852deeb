// Running ONNX models in ONNX Runtime (and the onnx checker) from the C++ tests.
//
// ONNX Runtime is npm's onnxruntime-node (its bundled CPU libonnxruntime), installed into
// build/ort by scripts/setup_ort.sh; `node` runs tests/onnx/ort_run.js in a child process, so
// nothing of ORT is linked into the tests. CMake passes the paths it found (DLTOOL_NODE,
// DLTOOL_ORT_NODE_MODULES); both are checked at run time (ORT may be installed after
// configure), and the environment variables of the same names override them.
//
//   TEST_CASE("export: lenet runs in ONNX Runtime", "[onnxruntime]") {
//     DLTOOL_REQUIRE_ORT();                        // skips (ctest: exit 4) without ORT
//     dl::Tensor y = dl::test::ort_run(model_path, x);
//     CHECK(dl::test::python_onnx_check(model_path) == "");
//
// Set DLTOOL_REQUIRE_ORT=1 (scripts/test.sh does) to make a missing ORT a test failure.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor/tensor.h"
#include "tests/support/skip.h"

namespace dl::test {

// The node executable and the node_modules directory that holds onnxruntime-node.
std::string node_executable();  // "" when none is found
std::string ort_node_modules();

// True when node runs and `ort_node_modules()` holds onnxruntime-node; else false and `*why`
// says what is missing.
bool ort_available(std::string* why = nullptr);
// "" when ort_available(); else why not and how to install it (a skip message).
std::string ort_unavailable_message();
// True when DLTOOL_REQUIRE_ORT=1: a missing ORT fails the test instead of skipping it.
bool ort_required();

struct OrtRunInfo {
  std::string input_name, output_name;  // the model's first input and first output
};

// Runs the model at `model_path` in ONNX Runtime (CPU, graph optimizations disabled) on `input`
// (float32, or int64 for token indices; any shape, any device: copied to the host) fed to the
// model's first input; returns
// its first output as a new float32 CPU tensor. Throws std::runtime_error with node's stderr
// when the model does not load or run (or ORT is unavailable).
dl::Tensor ort_run(const std::string& model_path, const dl::Tensor& input, OrtRunInfo* info = nullptr);
// The same with several inputs fed by name, e.g. a model that reads padded sequences:
//   ort_run(path, {{"input", x}, {"input_lengths", lengths}})   // x f32 [N, T, I], lengths i64 [N]
// Throws when a name is not one of the model's inputs (ORT's own check for a missing one).
dl::Tensor ort_run(const std::string& model_path, const std::vector<std::pair<std::string, dl::Tensor>>& inputs,
                   OrtRunInfo* info = nullptr);

// The onnx checker (Debian's /usr/bin/python3 + python3-onnx): onnx.checker.check_model(
// onnx.load(path), full_check=True). "" when the model is accepted, else the checker's message.
std::string python_onnx_check(const std::string& path);
// True when /usr/bin/python3 can import onnx; else false and `*why` says why.
bool python_onnx_available(std::string* why = nullptr);

}  // namespace dl::test

// In a TEST_CASE body: skips the test (see tests/support/skip.h) when ONNX Runtime cannot run,
// or FAILs when DLTOOL_REQUIRE_ORT=1.
#define DLTOOL_REQUIRE_ORT()                                              \
  do {                                                                    \
    const std::string dl_ort_why_ = ::dl::test::ort_unavailable_message(); \
    if (!dl_ort_why_.empty()) {                                           \
      if (::dl::test::ort_required()) FAIL(dl_ort_why_ << " (DLTOOL_REQUIRE_ORT=1)"); \
      DLTOOL_SKIP(dl_ort_why_);                                           \
    }                                                                     \
  } while (0)
