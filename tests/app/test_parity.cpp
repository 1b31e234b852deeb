// PyTorch parity of whole training runs (the golden proof that dltool trains like PyTorch). The
// Fashion-MNIST recipes below; the text_classification one at the end.
//
// tests/fixtures/gen_parity.py trains the Fashion-MNIST mlp and lenet recipes for 50 steps in
// PyTorch 1.13 (same data order, transforms, loss, SGD + momentum, per-step cosine schedule)
// from torch's own initialisation, and commits the initial weights, the final weights and the
// 50 losses. Here the real binary trains the same recipe from the same initial weights:
//
//   dltool train recipes/fashion_mnist/R.yaml data.loader.shuffle=false train.max_steps=50
//       train.log_every=1 --init-from tests/fixtures/parity_R_init.h5 --run-dir TMP --quiet
//
// and every logged loss (metrics.jsonl) must match PyTorch's to 1e-4 relative, every logged
// lr must match the torch scheduler's, and every final weight (checkpoints/last.h5) must
// match to atol = rtol = 1e-4. Skipped (with a warning) when Fashion-MNIST is not installed.
//
// The run adds train.threads=2, pinned: oneDNN's sgemm sums in another order on one thread
// than on two or more (DESIGN.md: library ops may depend on the thread count). Both orders are
// fine float32, but in the mlp run a hidden pre-activation of +2e-7 (step 3, unit 116 of layer 1,
// sample 24; +2.0e-7 in float64, +1.9e-7 in torch) comes out <= 0 on one thread: that sample's
// ReLU mask flips for that unit and the final weights drift up to 1.6e-4 from PyTorch's, past
// the 1e-4 tolerance (losses stay within 6e-5). With 2, 3 or 4 threads every loss matches to
// 1.5e-7 relative and every weight to 1.5e-8 absolute.
#include <catch2/catch.hpp>

#include "tests/support/tempdir.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "exporters/checkpoint.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"

namespace fs = std::filesystem;

namespace {

using dl::test::TempDir;

constexpr const char* kData = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
constexpr int kSteps = 50;


// Runs `dltool ARGS`; returns the exit status and appends stdout + stderr to `out`.
int dltool(const std::vector<std::string>& args, std::string& out) {
  std::vector<std::string> argv = {DLTOOL_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  const dl::test::ProcessResult r = dl::test::run_process(argv, {.merge_stderr = true});
  out += r.out;
  return r.exit_code;
}

// The number after `"key":` in a one-line JSON object (metrics.jsonl), or NaN.
double json_number(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  size_t at = line.find(k);
  if (at == std::string::npos) return std::nan("");
  return std::strtod(line.c_str() + at + k.size(), nullptr);
}

struct TrainRecord {
  int64_t step;
  double loss, lr;
};

std::vector<TrainRecord> train_records(const std::string& metrics_path) {
  std::ifstream in(metrics_path);
  std::vector<TrainRecord> v;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"split\":\"train\"") == std::string::npos) continue;
    v.push_back({static_cast<int64_t>(json_number(line, "step")), json_number(line, "loss"), json_number(line, "lr")});
  }
  return v;
}

// `recipe_path` (under the source tree) trained for `steps` steps from the fixture's initial
// weights, the training split in order, against parity_<recipe>.txt / _final.h5.
void parity(const std::string& recipe, const std::string& recipe_path, const std::string& data, int steps) {
  if (!fs::exists(data)) {
    WARN(data << " is not installed (scripts/setup.sh installs it): parity test skipped");
    return;
  }
  const auto cases = dl::test::load_fixtures("parity_" + recipe + ".txt");
  const dl::test::FixtureCase& fx = dl::test::find_case(cases, recipe);
  const std::vector<double> want_loss = fx.t("loss").to_vector<double>();
  const std::vector<double> want_lr = fx.t("lr").to_vector<double>();
  REQUIRE(want_loss.size() == static_cast<size_t>(steps));
  REQUIRE(want_lr.size() == static_cast<size_t>(steps));

  TempDir d;
  const std::string run = (d.path / "run").string();
  const std::string init = dl::test::source_path("tests/fixtures/parity_" + recipe + "_init.h5");
  std::string out;
  int rc = dltool({"train", dl::test::source_path(recipe_path), "data.loader.shuffle=false",
                   "train.max_steps=" + std::to_string(steps), "train.log_every=1", "train.threads=2", "--init-from",
                   init, "--run-dir", run, "--quiet"},
                  out);
  INFO(out);
  REQUIRE(rc == 0);

  // Losses and learning rates, step by step.
  const std::vector<TrainRecord> recs = train_records(run + "/metrics.jsonl");
  REQUIRE(recs.size() == static_cast<size_t>(steps));
  for (int i = 0; i < steps; ++i) {
    INFO(recipe << " step " << i + 1 << ": dltool loss " << recs[i].loss << " lr " << recs[i].lr
                << ", torch loss " << want_loss[i] << " lr " << want_lr[i]);
    CHECK(recs[i].step == i + 1);
    CHECK(recs[i].loss == Approx(want_loss[i]).epsilon(1e-4));
    CHECK(recs[i].lr == Approx(want_lr[i]).epsilon(1e-12).margin(1e-15));
  }

  // Final weights: same keys in the same order, every element within 1e-4.
  const dl::Checkpoint got = dl::load_checkpoint(run + "/checkpoints/last.h5");
  const std::string final_path = dl::test::source_path("tests/fixtures/parity_" + recipe + "_final.h5");
  const dl::Checkpoint want = dl::load_checkpoint(final_path, /*weights_only=*/true);
  REQUIRE(got.model.size() == want.model.size());
  for (size_t i = 0; i < want.model.size(); ++i) {
    const auto& [key, w] = want.model[i];
    INFO(recipe << " final weight " << key);
    REQUIRE(got.model[i].first == key);
    CHECK_CLOSE(got.model[i].second, w, 1e-4, 1e-4);
  }
}

}  // namespace

TEST_CASE("parity: mlp recipe trains like PyTorch for 50 steps - losses and lr and final weights", "[parity]") {
  parity("mlp", "recipes/fashion_mnist/mlp.yaml", kData, kSteps);
}

TEST_CASE("parity: lenet recipe trains like PyTorch for 50 steps - losses and lr and final weights", "[parity]") {
  parity("lenet", "recipes/fashion_mnist/lenet.yaml", kData, kSteps);
}

// Packed sequences from the batch: records of 1-256 bytes padded per batch, input_lengths into
// the LSTM (PyTorch: pack_padded_sequence(enforce_sorted=False)) and its h_n into the head,
// Adam, clip_grad_norm_ and a per-step cosine schedule. Fixtures:
// bench/text_classes_torch.py tests/fixtures/parity_fortune_classes.yaml --parity tests/fixtures
TEST_CASE("parity: a text_classification recipe with packed sequences trains like PyTorch for 20 steps",
          "[parity][text]") {
  parity("fortune_classes", "tests/fixtures/parity_fortune_classes.yaml", "/usr/share/games/fortunes/computers", 20);
}

TEST_CASE("parity: the fixture weight files load as weights-only checkpoints", "[parity]") {
  // gzip + shuffle filtered datasets (h5py compression='gzip') go through libhdf5's filters.
  for (auto [r, tensors] : {std::pair<const char*, size_t>{"mlp", 6}, {"lenet", 10}}) {
    for (const char* which : {"init", "final"}) {
      const std::string p = dl::test::source_path(std::string("tests/fixtures/parity_") + r + "_" + which + ".h5");
      INFO(p);
      dl::Checkpoint c = dl::load_checkpoint(p, /*weights_only=*/true);
      CHECK(c.format_version == 0);  // foreign file: no root attributes
      CHECK(c.model.size() == tensors);
      for (const auto& kv : c.model) CHECK(kv.second.dtype() == dl::DType::F32);
    }
  }
}
