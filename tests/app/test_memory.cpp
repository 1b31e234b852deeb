// Memory: `dltool validate` infers shapes without allocating, every command that builds a model
// refuses one that cannot fit (exit 2, naming the layer and the bytes), and an out-of-memory
// names what was being allocated. No test here allocates more than a small model: the huge
// models are refused from their shapes alone, and the out-of-memory case asks for more bytes
// than the address space holds, which fails at once. The out-of-memory of a training batch runs
// dltool under an address-space limit (prlimit --as), so it fails before touching the memory.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/skip.h"
#include "tests/support/tempdir.h"

namespace fs = std::filesystem;

namespace {

using dl::test::TempDir;
using Run = dl::test::ProcessResult;

Run dltool(const std::vector<std::string>& args, std::map<std::string, std::string> env = {}) {
  std::vector<std::string> argv = {DLTOOL_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return dl::test::run_process(argv, {.env = std::move(env), .merge_stderr = true, .timeout_s = 120});
}

bool have_data() { return fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"); }

// A recipe on Fashion-MNIST (28x28 inputs) with the given layers.
std::string recipe_with(const std::string& layers) {
  return "model:\n  layers:\n" + layers +
         "data: {dataset: fashion_mnist, val_size: 1000, loader: {batch_size: 64}}\n"
         "optimizer: {type: sgd, lr: 0.05, momentum: 0.9}\n"
         "train: {epochs: 1, max_steps: 2, log_every: 1, eval_every: 2}\n";
}

const std::string kHugeLinear = "    - flatten\n    - {type: linear, out_features: 2000000000, name: fc}\n";
const std::string kHugeConv = "    - {type: conv2d, out_channels: 99999999999, kernel_size: 5, name: conv}\n";
const std::string kHugePadding =
    "    - {type: conv2d, out_channels: 6, kernel_size: 3, padding: 100000, name: conv}\n"
    "    - flatten\n    - {type: linear, out_features: 10, name: fc}\n";
const std::string kSmall =
    "    - {type: conv2d, out_channels: 4, kernel_size: 3, name: conv}\n    - relu\n"
    "    - flatten\n    - {type: linear, out_features: 10, name: fc}\n";

}  // namespace

TEST_CASE("memory: validate infers huge models without allocating and refuses them by name", "[memory][cli]") {
  if (!have_data()) return;
  TempDir d;
  struct Case {
    const char* name;
    std::string layers;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      // 2e9 x 784 weights: 5.7 TiB of float32.
      {"huge_linear", kHugeLinear, {"'fc' (linear)", "Total parameters: 1570000000000", "TiB"}},
      {"huge_conv", kHugeConv, {"'conv' (conv2d)", "[99999999999, 24, 24]", "TiB"}},
      // A [6, 200026, 200026] output at batch 64: the activations, not the weights.
      {"huge_padding", kHugePadding, {"'conv' (conv2d)", "[6, 200026, 200026]", "activations"}},
  };
  for (const Case& c : cases) {
    const std::string path = d.file(std::string(c.name) + ".yaml", recipe_with(c.layers));
    Run r = dltool({"validate", path});
    INFO(c.name << ": " << r.status_text() << "\n" << r.out);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.out, Catch::Contains(path) && Catch::Contains("does not fit") &&
                          Catch::Contains("lower data.loader.batch_size"));
    CHECK_THAT(r.out, !Catch::Contains("bad_alloc") && !Catch::Contains("error: out of memory"));
    for (const std::string& e : c.expect) CHECK_THAT(r.out, Catch::Contains(e));
  }
}

TEST_CASE("memory: validate prints the parameter count and the estimate, also as JSON", "[memory][cli]") {
  if (!have_data()) return;
  const std::string lenet = dl::test::source_path("recipes/fashion_mnist/lenet.yaml");
  Run r = dltool({"validate", lenet});
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("Total parameters: 61706") && Catch::Contains("Training memory estimate:") &&
                        Catch::Contains("optimizer state") && Catch::Contains("at batch size") &&
                        Catch::Contains("Available:"));
  Run j = dltool({"validate", "--json", lenet});
  INFO(j.out);
  CHECK(j.exit_code == 0);
  CHECK_THAT(j.out, Catch::StartsWith("{\"config\":") && Catch::Contains("\"parameters\":61706") &&
                        Catch::Contains("\"output_shape\":[6,28,28]") && Catch::Contains("\"weights_bytes\":") &&
                        Catch::Contains("\"total_bytes\":") && Catch::Contains("\"fits\":true"));
  // The weights of LeNet: 61706 float32 parameters.
  CHECK_THAT(j.out, Catch::Contains("\"weights_bytes\":246824"));
}

TEST_CASE("memory: train, bench and validate refuse a model over the memory limit before allocating it", "[memory][cli]") {
  if (!have_data()) return;
  TempDir d;
  const std::string huge = d.file("huge.yaml", recipe_with(kHugeLinear));
  Run t = dltool({"train", huge, "--run-dir", d.file("run")});
  INFO(t.out);
  CHECK(t.exit_code == 2);
  CHECK_THAT(t.out, Catch::Contains("'fc' (linear)") && Catch::Contains("training this model needs about"));
  CHECK_FALSE(fs::exists(d.file("run/checkpoints")));
  Run b = dltool({"bench", huge});
  CHECK(b.exit_code == 2);
  CHECK_THAT(b.out, Catch::Contains("'fc' (linear)"));

  // A small model under a smaller limit (DLTOOL_MEMORY_LIMIT replaces the detected memory).
  const std::string small = d.file("small.yaml", recipe_with(kSmall));
  Run v = dltool({"validate", small}, {{"DLTOOL_MEMORY_LIMIT", "1M"}});
  INFO(v.out);
  CHECK(v.exit_code == 2);
  CHECK_THAT(v.out, Catch::Contains("small.yaml") && Catch::Contains("1.0 MiB is available (DLTOOL_MEMORY_LIMIT)") &&
                        Catch::Contains("the largest layers: 'conv' (conv2d)"));
  CHECK(dltool({"validate", small}, {{"DLTOOL_MEMORY_LIMIT", "1G"}}).exit_code == 0);
  Run bad = dltool({"validate", small}, {{"DLTOOL_MEMORY_LIMIT", "lots"}});
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.out, Catch::Contains("DLTOOL_MEMORY_LIMIT='lots'"));
}

TEST_CASE("memory: an allocation that fails names the tensor and the layer", "[memory][cli]") {
  if (!have_data()) return;
  TempDir d;
  // 2^40 x 784 float32 weights (3 PiB) exceed the address space: the allocation fails at once.
  const std::string path = d.file(
      "oom.yaml", recipe_with("    - flatten\n    - {type: linear, out_features: 1099511627776, name: fc}\n"));
  Run r = dltool({"train", path, "--run-dir", d.file("run")}, {{"DLTOOL_MEMORY_LIMIT", "none"}});
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("oom.yaml:") && Catch::Contains("layer 'fc' (linear)") &&
                        Catch::Contains("tensor [1099511627776, 784] float32") && Catch::Contains("PiB") &&
                        Catch::Contains("out of memory"));
}

#if defined(__SANITIZE_ADDRESS__)
#define DLTOOL_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DLTOOL_TEST_ASAN 1
#endif
#endif

TEST_CASE("memory: a training batch that does not fit names the step, the batch size and the layer", "[memory][cli]") {
  if (!have_data()) return;
#ifdef DLTOOL_TEST_ASAN
  DLTOOL_SKIP("AddressSanitizer reserves terabytes of address space: it cannot run under prlimit --as");
#endif
  DLTOOL_SKIP_IF(!fs::exists("/usr/bin/prlimit"), "prlimit (util-linux) is not installed");
  TempDir d;
  // 78M weights (300 MiB) build; the first batch's [8192, 100000] activation (3.1 GiB) cannot
  // be allocated under a 3 GB address-space limit. DLTOOL_MEMORY_LIMIT=none: no estimate first.
  std::string yaml = recipe_with("    - flatten\n    - {type: linear, out_features: 100000, name: wide}\n"
                                 "    - relu\n    - {type: linear, out_features: 10}\n");
  yaml.replace(yaml.find("batch_size: 64"), 14, "batch_size: 8192, prefetch: 0");
  const std::string path = d.file("wide.yaml", yaml);
  Run r = dl::test::run_process({"/usr/bin/prlimit", "--as=3000000000", DLTOOL_BINARY, "train", path, "--run-dir",
                                 d.file("run")},
                                {.env = {{"DLTOOL_MEMORY_LIMIT", "none"}}, .merge_stderr = true, .timeout_s = 120});
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("training step 1, a batch of 8192 samples (data.loader.batch_size 8192)") &&
                        Catch::Contains("layer 'wide' (linear)") && Catch::Contains("tensor [8192, 100000] float32") &&
                        Catch::Contains("out of memory") && Catch::Contains("lower data.loader.batch_size"));
}
