// The training loop's host reads (RunOptions::defer_host_reads; engine/tensor/host_reads.h):
// on CUDA the loop reads the loss every log_every steps, not every step, so the host keeps
// queueing work. The CPU runs the same code with the option on: the numbers must be the same
// bits as a run that reads every step, the reads must be that few, and a NaN loss must still
// stop the run, naming its step.
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <variant>
#include <string>
#include <vector>

#include "cli/run/trainer.h"
#include "configs/config.h"
#include "engine/tensor/host_reads.h"
#include "exporters/checkpoint.h"
#include "tests/support/fixtures.h"
#include "tests/support/tempdir.h"

using namespace dl;
namespace fs = std::filesystem;

namespace {

const char* const kImages = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

Config mlp(const std::vector<std::string>& extra) {
  std::vector<std::string> ov = {"data.loader.shuffle=false", "train.seed=0", "data.loader.prefetch=0",
                                 "train.clip_grad_norm=1.0"};
  ov.insert(ov.end(), extra.begin(), extra.end());
  return load_config(test::source_path("recipes/fashion_mnist/mlp.yaml"), ov);
}

train::RunOptions options(bool defer, const std::string& dir = "") {
  train::RunOptions o;
  o.run_dir = dir;
  o.write_outputs = !dir.empty();
  o.final_test = false;
  o.mode = exporters::ProgressReporter::Mode::quiet;
  o.defer_host_reads = defer;
  return o;
}

struct Outcome {
  train::RunResult result;
  uint64_t reads = 0;
  std::vector<double> weights;
};

Outcome train_mlp(bool defer, const std::vector<std::string>& extra, const std::string& dir = "") {
  train::Trainer t(mlp(extra), options(defer, dir));
  Outcome o;
  const uint64_t before = host_read_count();
  o.result = t.run();
  o.reads = host_read_count() - before;
  for (auto& [name, p] : t.model().named_parameters())
    for (double v : p.detach().contiguous().to_vector<double>()) o.weights.push_back(v);
  return o;
}

}  // namespace

TEST_CASE("host reads: a deferred run reads the loss every log_every steps, with the same numbers", "[host_reads][train]") {
  if (!fs::exists(kImages)) return;
  const std::vector<std::string> extra = {"train.max_steps=40", "train.log_every=10"};
  const Outcome every = train_mlp(false, extra), deferred = train_mlp(true, extra);
  REQUIRE(every.result.losses.size() == 40);
  CHECK(deferred.result.losses == every.result.losses);
  CHECK(deferred.weights == every.weights);
  // Every step reads its loss and its gradient norm. Deferred, each of the 4 logs reads the
  // window's losses and, with them, the targets' range checks: 2 reads per 10 steps.
  CHECK(every.reads == 80);
  CHECK(deferred.reads == 8);
}

TEST_CASE("host reads: deferred, checkpoints and evaluations read the pending losses first", "[host_reads][train]") {
  if (!fs::exists(kImages)) return;
  test::TempDir d;
  // No log before the last step: the losses are read before the checkpoints (their window sum is saved) and the
  // evaluation, which see the same values as a run reading every step.
  const std::vector<std::string> extra = {"train.max_steps=30", "train.log_every=1000", "checkpoint.every_steps=12",
                                          "train.eval_every=15"};
  const Outcome every = train_mlp(false, extra, (d.path / "a").string());
  const Outcome deferred = train_mlp(true, extra, (d.path / "b").string());
  CHECK(deferred.result.losses == every.result.losses);
  REQUIRE(every.result.val);
  REQUIRE(deferred.result.val);
  CHECK(deferred.result.val->loss == every.result.val->loss);
  CHECK(deferred.result.val->accuracy == every.result.val->accuracy);
  for (const char* name : {"step-12.h5", "step-24.h5"}) {
    CAPTURE(name);
    const fs::path a = d.path / "a" / "checkpoints" / name, b = d.path / "b" / "checkpoints" / name;
    REQUIRE(fs::exists(a));
    REQUIRE(fs::exists(b));
    const Checkpoint ca = load_checkpoint(a.string()), cb = load_checkpoint(b.string());
    CHECK(cb.trainer.at("window_steps") == ca.trainer.at("window_steps"));
    CHECK(cb.trainer.at("window_loss") == ca.trainer.at("window_loss"));
    CHECK(std::get<double>(ca.trainer.at("window_loss")) > 0);
  }
}

TEST_CASE("host reads: deferred, a NaN loss stops the run at the next read and names its step", "[host_reads][train]") {
  if (!fs::exists(kImages)) return;
  const std::vector<std::string> extra = {"train.max_steps=60", "train.log_every=25", "optimizer.lr=1e30",
                                          "train.clip_grad_norm=0"};
  std::string at_once, later;
  try {
    train_mlp(false, extra);
  } catch (const train::NonFiniteLossError& e) {
    at_once = e.what();
  }
  try {
    train_mlp(true, extra);
  } catch (const train::NonFiniteLossError& e) {
    later = e.what();
  }
  REQUIRE_THAT(at_once, Catch::Contains("at step"));
  const std::string head = at_once.substr(0, at_once.find(':'));  // "loss is NaN at step K (epoch 1)"
  CAPTURE(at_once, later);
  CHECK(later.rfind(head, 0) == 0);
  CHECK_THAT(later, Catch::Contains("the loss is read every train.log_every steps, so the steps up to 25 ran after it"));
}

TEST_CASE("host reads: evaluation reads the split's loss and predictions once, not per batch", "[host_reads][eval]") {
  if (!fs::exists(kImages)) return;
  // 5000 validation images in batches of 500: 10 batches.
  auto eval = [](bool defer, uint64_t& reads) {
    train::Trainer t(mlp({"train.max_steps=5"}), options(defer));
    t.run();
    const uint64_t before = host_read_count();
    train::EvalResult r = t.evaluate("val");
    reads = host_read_count() - before;
    return r;
  };
  uint64_t reads_now = 0, reads_deferred = 0;
  const train::EvalResult now = eval(false, reads_now), deferred = eval(true, reads_deferred);
  CHECK(now.samples == 5000);
  CHECK(deferred.loss == now.loss);
  CHECK(deferred.accuracy == now.accuracy);
  CHECK(deferred.confusion == now.confusion);
  CHECK(now.accuracy > 0.15);  // chance is 0.1 after 5 steps of training
  // The loss sum and the predictions (and, deferred, the targets' checks with them).
  CHECK(reads_now == 2);
  CHECK(reads_deferred == 3);
}

TEST_CASE("host reads: deferred, a run stopped by a signal between logs returns every loss", "[host_reads][train]") {
  if (!fs::exists(kImages)) return;
  // No run directory, so no checkpoint reads the pending losses: the stop itself must.
  const std::vector<std::string> extra = {"train.max_steps=20", "train.log_every=10"};
  const Outcome straight = train_mlp(true, extra);
  train::RunOptions o = options(true);
  o.on_step = [](int64_t step) {
    if (step == 7) std::raise(SIGTERM);
  };
  train::Trainer t(mlp(extra), o);
  const train::RunResult stopped = t.run();
  CHECK(stopped.exit_code == 75);
  REQUIRE(stopped.losses.size() == 7);
  CHECK(stopped.losses == std::vector<double>(straight.result.losses.begin(), straight.result.losses.begin() + 7));
}
