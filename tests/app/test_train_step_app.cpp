// The training step's options through the whole loop: gradient accumulation equals the larger
// batch, and runs with accumulation, clipping, EMA and schedulers whose state holds strings
// (one_cycle, cyclic, sequential) resume bit-identically through real checkpoint files.
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <csignal>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "cli/run/trainer.h"
#include "configs/config.h"
#include "exporters/checkpoint.h"

using namespace dl;
namespace fs = std::filesystem;

namespace {

bool have_fashion_mnist() {
  return fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
}

const std::string kModel = R"(model:
  layers:
    - flatten
    - {type: linear, out_features: 32}
    - relu
    - {type: linear, out_features: 10}
)";

train::RunOptions quiet(const fs::path& dir) {
  train::RunOptions o;
  o.run_dir = dir.string();
  o.final_test = false;
  o.mode = exporters::ProgressReporter::Mode::quiet;
  return o;
}

fs::path temp_root() {
  char tmpl[] = "/tmp/dltool-step-XXXXXX";
  return mkdtemp(tmpl);
}

}  // namespace

TEST_CASE("accumulate_steps: 2 x batch 32 trains like batch 64 (mlp, Fashion-MNIST)", "[train][step][accumulate]") {
  if (!have_fashion_mnist()) {
    WARN("Fashion-MNIST not installed: skipped");
    return;
  }
  const fs::path root = temp_root();
  auto recipe = [&](int batch, int acc) {
    return kModel +
           "data: {dataset: fashion_mnist, val_size: 59808, loader: {batch_size: " + std::to_string(batch) +
           ", shuffle: true, drop_last: true}}\n"
           "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n"
           "train: {epochs: 3, log_every: 1, seed: 5, threads: 1, accumulate_steps: " + std::to_string(acc) + "}\n";
  };
  // 192 training samples: 3 batches of 64 = 6 of 32 per epoch; 9 optimizer steps either way.
  Config big = load_config_string(recipe(64, 1), (root / "big.yaml").string());
  Config acc = load_config_string(recipe(32, 2), (root / "acc.yaml").string());
  train::RunResult a = train::Trainer(big, quiet(root / "big")).run();
  train::RunResult b = train::Trainer(acc, quiet(root / "acc")).run();
  REQUIRE(a.steps == 9);
  REQUIRE(b.steps == 9);
  REQUIRE(b.losses.size() == 2 * a.losses.size());  // one loss per micro-batch
  for (size_t i = 0; i < a.losses.size(); ++i) {
    INFO("step " << i + 1);
    CHECK((b.losses[2 * i] + b.losses[2 * i + 1]) / 2 == Approx(a.losses[i]).epsilon(1e-5));
  }
  Checkpoint ca = load_checkpoint((root / "big/checkpoints/last.h5").string());
  Checkpoint cb = load_checkpoint((root / "acc/checkpoints/last.h5").string());
  REQUIRE(ca.model.size() == cb.model.size());
  for (size_t k = 0; k < ca.model.size(); ++k) {
    auto va = ca.model[k].second.to_vector<float>(), vb = cb.model[k].second.to_vector<float>();
    REQUIRE(va.size() == vb.size());
    double worst = 0;
    for (size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::abs(double(va[i]) - vb[i]));
    INFO(ca.model[k].first);
    CHECK(worst < 1e-5);
  }
  fs::remove_all(root);
}

TEST_CASE("resume is bit-identical with accumulation, clipping, EMA and string-state schedulers",
          "[train][step][resume]") {
  if (!have_fashion_mnist()) {
    WARN("Fashion-MNIST not installed: skipped");
    return;
  }
  const std::string data =
      "data: {dataset: fashion_mnist, val_size: 59800, loader: {batch_size: 32, shuffle: true}}\n";
  // 200 samples / 32 = 7 batches per epoch; accumulate 2 -> 4 optimizer steps (the last of one
  // batch); 4 epochs = 16 steps. Stopped at K = 6: epoch 2, after its second step (batch 4).
  const std::vector<std::string> variants = {
      "optimizer: {type: adam, lr: 0.001}\n"
      "scheduler: {type: one_cycle, max_lr: 0.01, interval: step}\n"
      "train: {epochs: 4, log_every: 2, eval_every: 5, seed: 2, accumulate_steps: 2, clip_grad_norm: 0.5, "
      "ema_decay: 0.9}\n",
      "optimizer: {type: sgd, lr: 0.01, momentum: 0.9}\n"
      "scheduler: {type: cyclic, base_lr: 0.001, max_lr: 0.05, step_size_up: 3, mode: triangular2, interval: step}\n"
      "train: {epochs: 4, log_every: 2, seed: 2, accumulate_steps: 2, clip_grad_value: 0.01}\n",
      "optimizer: {type: rmsprop, lr: 0.001, centered: true, momentum: 0.5}\n"
      "scheduler: {type: sequential, milestones: [3], interval: step,\n"
      "            schedulers: [{type: linear, start_factor: 0.1, total_iters: 3}, {type: cosine_annealing, T_max: 13}]}\n"
      "train: {epochs: 4, log_every: 2, seed: 2, ema_decay: 0.5}\n",
  };
  for (const std::string& v : variants) {
    INFO(v);
    const fs::path root = temp_root();
    Config cfg = load_config_string(kModel + data + v + "checkpoint: {every_epoch: true}\n",
                                    (root / "r.yaml").string());
    const int64_t K = 6;
    train::RunResult straight = train::Trainer(cfg, quiet(root / "a")).run();
    train::RunOptions o = quiet(root / "b");
    o.on_step = [](int64_t step) {
      if (step == K) std::raise(SIGTERM);
    };
    train::RunResult first = train::Trainer(cfg, o).run();
    REQUIRE(first.exit_code == 75);
    const std::string last = (root / "b/checkpoints/last.h5").string();
    Checkpoint ckpt = load_checkpoint(last);
    if (cfg.train.ema_decay > 0) CHECK_FALSE(ckpt.ema.empty());
    train::RunOptions r = quiet(root / "b");
    r.resume_from = ckpt;
    r.resume_path = last;
    train::RunResult second = train::Trainer(cfg, r).run();
    REQUIRE(second.steps == straight.steps);
    REQUIRE(first.losses.size() + second.losses.size() == straight.losses.size());
    for (size_t i = 0; i < straight.losses.size(); ++i) {
      const double got = i < first.losses.size() ? first.losses[i] : second.losses[i - first.losses.size()];
      INFO("batch " << i + 1);
      CHECK(got == straight.losses[i]);
    }
    Checkpoint a = load_checkpoint((root / "a/checkpoints/last.h5").string());
    Checkpoint b = load_checkpoint((root / "b/checkpoints/last.h5").string());
    REQUIRE(a.model.size() == b.model.size());
    for (size_t k = 0; k < a.model.size(); ++k) CHECK(a.model[k].second.to_vector<float>() == b.model[k].second.to_vector<float>());
    REQUIRE(a.ema.size() == b.ema.size());
    for (size_t k = 0; k < a.ema.size(); ++k) CHECK(a.ema[k].second.to_vector<float>() == b.ema[k].second.to_vector<float>());
    REQUIRE(a.scheduler);
    CHECK(a.scheduler->strings == b.scheduler->strings);
    CHECK(a.scheduler->scalars == b.scheduler->scalars);
    fs::remove_all(root);
  }
}

TEST_CASE("train with LBFGS: the closure re-runs the batch, and accumulation is refused", "[train][step][lbfgs]") {
  if (!have_fashion_mnist()) {
    WARN("Fashion-MNIST not installed: skipped");
    return;
  }
  const fs::path root = temp_root();
  const std::string base = kModel +
                           "data: {dataset: fashion_mnist, val_size: 59744, loader: {batch_size: 256, shuffle: false}}\n"
                           "optimizer: {type: lbfgs, lr: 1, max_iter: 4, history_size: 5, line_search_fn: strong_wolfe}\n";
  Config cfg = load_config_string(base + "train: {epochs: 3, log_every: 1, seed: 1}\n", (root / "l.yaml").string());
  train::RunResult r = train::Trainer(cfg, quiet(root / "l")).run();
  REQUIRE(r.steps == 3);
  CHECK(r.losses.back() < r.losses.front());
  Config bad = load_config_string(base + "train: {accumulate_steps: 2}\n", (root / "bad.yaml").string());
  CHECK_THROWS_WITH(train::Trainer(bad, quiet(root / "bad")), Catch::Contains("accumulate"));
  fs::remove_all(root);
}

TEST_CASE("TensorBoard: lr per group, weight and gradient histograms, hparams at the end", "[train][tensorboard]") {
  if (!have_fashion_mnist()) {
    WARN("Fashion-MNIST not installed: skipped");
    return;
  }
  const fs::path root = temp_root();
  Config cfg = load_config_string(
      kModel +
          "data: {dataset: fashion_mnist, val_size: 59800, loader: {batch_size: 50}}\n"
          "optimizer: {type: adamw, lr: 0.001, param_groups: [{params: '*.bias', weight_decay: 0}]}\n"
          "train: {epochs: 1, log_every: 2, seed: 3, histogram_every: 2, clip_grad_norm: 10}\n",
      (root / "tb.yaml").string());
  train::RunOptions o = quiet(root / "run");
  o.final_test = true;
  train::Trainer(cfg, o).run();  // 200 samples / 50 = 4 steps
  std::string file;
  for (const auto& e : fs::directory_iterator(root / "run"))
    if (e.path().filename().string().rfind("events.out.tfevents", 0) == 0) file = e.path().string();
  REQUIRE_FALSE(file.empty());
  const std::string out = (root / "events.txt").string();
  const std::string cmd = "/usr/bin/python3 '" + std::string(DLTOOL_SOURCE_DIR) + "/tests/app/read_tfevents.py' '" +
                          file + "' > '" + out + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* want : {"train/lr_group1", "train/grad_norm", "histogram 2 weight/1.weight", "histogram 4 grad/3.bias",
                           "hparams 4", "\"optimizer.lr\"", "test/accuracy"})
    CHECK_THAT(text, Catch::Contains(want));
  CHECK_THAT(text, !Catch::Contains("histogram 1 "));  // every 2 steps only
  fs::remove_all(root);
}

TEST_CASE("reduce_on_plateau steps after every validation, also with eval_every N steps, and resumes",
          "[train][sched][plateau]") {
  if (!have_fashion_mnist()) {
    WARN("Fashion-MNIST not installed: skipped");
    return;
  }
  const fs::path root = temp_root();
  // mode max on val/loss: every evaluation whose loss does not rise counts as bad, so with
  // patience 0 the lr halves at every validation after the first.
  Config cfg = load_config_string(
      kModel +
          "data: {dataset: fashion_mnist, val_size: 59800, loader: {batch_size: 50}}\n"
          "optimizer: {type: sgd, lr: 0.1}\n"
          "scheduler: {type: reduce_on_plateau, metric: val/loss, mode: max, patience: 0, factor: 0.5, interval: step}\n"
          "train: {epochs: 2, log_every: 1, eval_every: 2, seed: 4}\n"
          "checkpoint: {every_steps: 2}\n",
      (root / "p.yaml").string());
  train::RunResult r = train::Trainer(cfg, quiet(root / "run")).run();  // 4 steps per epoch, 8 steps
  REQUIRE(r.steps == 8);
  Checkpoint last = load_checkpoint((root / "run/checkpoints/last.h5").string());
  REQUIRE(last.scheduler);
  CHECK(last.scheduler->scalars.at("last_epoch") == 4);  // 4 validations
  const double lr = last.optimizer->param_groups[0].options.at("lr");
  CHECK(lr < 0.1);
  CHECK(lr >= 0.1 / 16);
  // A checkpoint written between validations resumes (its last_epoch counts validations).
  train::RunOptions o = quiet(root / "run");
  o.resume_from = load_checkpoint((root / "run/checkpoints/step-6.h5").string());
  o.resume_path = (root / "run/checkpoints/step-6.h5").string();
  train::RunResult second = train::Trainer(cfg, o).run();
  CHECK(second.steps == 8);
  fs::remove_all(root);
}

TEST_CASE("loss.inputs: the loss reads named nodes (logits before a softmax output)", "[train][loss]") {
  if (!have_fashion_mnist()) {
    WARN("Fashion-MNIST not installed: skipped");
    return;
  }
  const fs::path root = temp_root();
  const std::string rest =
      "data: {dataset: fashion_mnist, val_size: 59800, loader: {batch_size: 50}}\n"
      "optimizer: {type: sgd, lr: 0.1}\n"
      "train: {epochs: 1, log_every: 1, seed: 8}\n";
  // Same nodes and weights; one model returns the logits, the other probabilities and the loss
  // names the logits node: identical training.
  const std::string nodes =
      "model:\n  nodes:\n    - {name: flat, type: flatten, inputs: input}\n"
      "    - {name: fc, type: linear, out_features: 10}\n"
      "    - {name: prob, type: softmax, dim: 1}\n";
  Config plain = load_config_string(nodes + "  output: fc\n" + rest, (root / "a.yaml").string());
  Config named = load_config_string(nodes + "  output: prob\nloss: {type: cross_entropy, inputs: [fc]}\n" + rest,
                                    (root / "b.yaml").string());
  train::RunResult a = train::Trainer(plain, quiet(root / "a")).run();
  train::RunResult b = train::Trainer(named, quiet(root / "b")).run();
  REQUIRE(a.losses.size() == 4);
  CHECK(a.losses == b.losses);
  CHECK(a.losses.back() < a.losses.front());
  CHECK_THROWS_WITH(load_config_string(nodes + "loss: {type: cross_entropy, inputs: [logits]}\n" + rest,
                                       (root / "c.yaml").string()),
                    Catch::Contains("'logits' is not a node of the model"));
  fs::remove_all(root);
}
