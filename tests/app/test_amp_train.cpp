// Mixed precision end to end (train.precision, train.grad_scaler; engine/amp): the mlp recipe
// in bf16 and fp16 tracks fp32, an fp16 run stopped mid-epoch resumes bit-identically (loss
// scale and growth tracker included), and bad values are config errors naming the key.
#include <catch2/catch.hpp>

#include <cmath>
#include <csignal>
#include <filesystem>

#include "cli/run/trainer.h"
#include "configs/config.h"
#include "tests/support/dltool.h"
#include "tests/support/fixtures.h"
#include "tests/support/tempdir.h"

using namespace dl;
namespace fs = std::filesystem;

namespace {

const char* const kImages = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

train::RunOptions quiet(const std::string& dir) {
  train::RunOptions o;
  o.run_dir = dir;
  o.write_outputs = !dir.empty();
  o.final_test = false;
  o.mode = exporters::ProgressReporter::Mode::quiet;
  return o;
}

// The mlp recipe for `steps` steps without shuffling, in `precision`.
train::RunResult mlp_run(const std::string& precision, int64_t steps, std::vector<std::string> extra = {}) {
  std::vector<std::string> ov = {"data.loader.shuffle=false", "train.max_steps=" + std::to_string(steps),
                                 "train.log_every=100", "train.seed=0", "data.loader.prefetch=0",
                                 "train.precision=" + precision};
  ov.insert(ov.end(), extra.begin(), extra.end());
  Config cfg = load_config(test::source_path("recipes/fashion_mnist/mlp.yaml"), ov);
  train::Trainer t(cfg, quiet(""));
  return t.run();
}

}  // namespace

TEST_CASE("amp train: the mlp recipe in bf16 and fp16 tracks its fp32 losses", "[amp][amp_train]") {
  if (!fs::exists(kImages)) {
    WARN(kImages << " is not installed: skipped");
    return;
  }
  const int64_t steps = 30;
  const train::RunResult f32 = mlp_run("fp32", steps), bf16 = mlp_run("bf16", steps), f16 = mlp_run("fp16", steps);
  REQUIRE(f32.losses.size() == static_cast<size_t>(steps));
  REQUIRE(bf16.losses.size() == f32.losses.size());
  REQUIRE(f16.losses.size() == f32.losses.size());
  // Measured (30 steps of batch 64, losses 2.32 -> 1.69): the largest |loss - fp32 loss| over
  // the steps is 1.07e-3 in bf16 and 2.3e-4 in fp16 (bf16 keeps 8 significant bits, fp16 11,
  // so about 8x apart). The bounds leave about 4x headroom.
  double worst_bf16 = 0, worst_f16 = 0;
  for (size_t i = 0; i < f32.losses.size(); ++i) {
    REQUIRE(std::isfinite(bf16.losses[i]));
    REQUIRE(std::isfinite(f16.losses[i]));
    worst_bf16 = std::max(worst_bf16, std::abs(bf16.losses[i] - f32.losses[i]));
    worst_f16 = std::max(worst_f16, std::abs(f16.losses[i] - f32.losses[i]));
  }
  INFO("max |loss - fp32 loss|: bf16 " << worst_bf16 << ", fp16 " << worst_f16);
  CHECK(worst_bf16 < 5e-3);
  CHECK(worst_f16 < 1e-3);
  CHECK(bf16.losses.back() < bf16.losses.front() * 0.85);
  // tf32 is fp32 on the CPU (bit for bit).
  CHECK(mlp_run("tf32", 5).losses == mlp_run("fp32", 5).losses);
}

TEST_CASE("amp train: an fp16 run stopped mid-epoch resumes bit-identically, loss scale included", "[amp][amp_train]") {
  if (!fs::exists(kImages)) {
    WARN(kImages << " is not installed: skipped");
    return;
  }
  test::TempDir dir;
  // A start scale of 2^27 overflows fp16 gradients: the first steps are skipped and the scale
  // backs off; growth_interval 4 grows it again, so both branches run before and after K.
  const std::vector<std::string> ov = {"data.val_size=59744", "data.loader.shuffle=true", "train.epochs=3",
                                       "train.log_every=2", "train.eval_every=1000", "train.seed=3",
                                       "train.precision=fp16", "train.grad_scaler.init_scale=134217728",
                                       "train.grad_scaler.growth_interval=4", "data.loader.prefetch=0"};
  Config cfg = load_config(test::source_path("recipes/fashion_mnist/mlp.yaml"), ov);
  // 256 training samples / 64 = 4 steps per epoch, 12 in all; stop at K = 6 (epoch 2, batch 2).
  const int64_t K = 6;
  train::RunResult straight;
  {
    train::Trainer t(cfg, quiet((dir.path / "a").string()));
    straight = t.run();
  }
  REQUIRE(straight.steps == 12);
  train::RunResult first;
  {
    train::RunOptions o = quiet((dir.path / "b").string());
    o.on_step = [](int64_t step) {
      if (step == K) std::raise(SIGTERM);
    };
    train::Trainer t(cfg, o);
    first = t.run();
  }
  REQUIRE(first.exit_code == 75);
  const std::string last = (dir.path / "b/checkpoints/last.h5").string();
  Checkpoint ck = load_checkpoint(last);
  REQUIRE(ck.trainer.count("grad_scaler.scale"));
  REQUIRE(ck.trainer.count("grad_scaler.growth_tracker"));
  const double scale_at_k = std::get<double>(ck.trainer.at("grad_scaler.scale"));
  CHECK(scale_at_k < 134217728.0);  // backed off from the start scale
  train::RunResult second;
  {
    train::RunOptions o = quiet((dir.path / "b").string());
    o.resume_from = ck;
    o.resume_path = last;
    train::Trainer t(cfg, o);
    second = t.run();
  }
  REQUIRE(second.steps == 12);
  REQUIRE(first.losses.size() + second.losses.size() == straight.losses.size());
  for (size_t i = 0; i < straight.losses.size(); ++i) {
    INFO("step " << i + 1);
    const double got = i < first.losses.size() ? first.losses[i] : second.losses[i - first.losses.size()];
    CHECK(got == straight.losses[i]);
  }
  Checkpoint a = load_checkpoint((dir.path / "a/checkpoints/last.h5").string());
  Checkpoint b = load_checkpoint((dir.path / "b/checkpoints/last.h5").string());
  CHECK(a.trainer.at("grad_scaler.scale") == b.trainer.at("grad_scaler.scale"));
  CHECK(a.trainer.at("grad_scaler.growth_tracker") == b.trainer.at("grad_scaler.growth_tracker"));
  REQUIRE(a.model.size() == b.model.size());
  for (size_t i = 0; i < a.model.size(); ++i) {
    INFO(a.model[i].first);
    CHECK(a.model[i].second.to_vector<float>() == b.model[i].second.to_vector<float>());
  }
}

TEST_CASE("amp train: bad precision and grad_scaler values are config errors naming the key", "[amp][amp_train][cli]") {
  const std::string recipe = test::source_path("recipes/fashion_mnist/mlp.yaml");
  const std::pair<const char*, const char*> bad[] = {
      {"train.precision=fp8", "train.precision"},
      {"train.grad_scaler.growth_factor=1", "train.grad_scaler.growth_factor"},
      {"train.grad_scaler.backoff_factor=1.5", "train.grad_scaler.backoff_factor"},
      {"train.grad_scaler.init_scale=0", "train.grad_scaler.init_scale"},
      {"train.grad_scaler.growth_interval=0", "train.grad_scaler.growth_interval"},
      {"train.grad_scaler.enabled=maybe", "train.grad_scaler.enabled"},
      {"train.grad_scaler.bogus=1", "train.grad_scaler.bogus"},
  };
  for (const auto& [override_kv, key] : bad) {
    INFO(override_kv);
    test::ProcessResult r = test::run_dltool({"validate", recipe, override_kv});
    INFO(r.out);
    CHECK(r.exit_code == 2);
    CHECK(r.out.find(key) != std::string::npos);
  }
}
