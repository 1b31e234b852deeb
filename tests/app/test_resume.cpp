// Exact resume: N steps straight == K steps, stop (a real SIGTERM), resume to N — with K in
// the middle of an epoch, shuffling, dropout, momentum and a cosine schedule. Weights must be
// bit-identical and every logged loss identical.
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "configs/config.h"
#include "cli/run/trainer.h"

using namespace dl;
namespace fs = std::filesystem;

namespace {

const char* kRecipe = R"(model:
  layers:
    - flatten
    - {type: linear, out_features: 32}
    - relu
    - {type: dropout, p: 0.2}
    - {type: linear, out_features: 10}
data:
  dataset: fashion_mnist
  val_size: 59800
  loader: {batch_size: 32, shuffle: true}
optimizer: {type: sgd, lr: 0.05, momentum: 0.9, weight_decay: 0.0001}
scheduler: {type: cosine_annealing, T_max: auto, interval: step}
train: {epochs: 5, log_every: 3, eval_every: 1000, seed: 7}
checkpoint: {every_epoch: true, keep_last: 2}
)";

std::vector<std::string> train_lines(const std::string& run) {
  std::ifstream in(run + "/metrics.jsonl");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line))
    if (line.find("\"split\":\"train\"") != std::string::npos) {
      // drop the timing fields, keep step/epoch/loss/lr
      out.push_back(line.substr(0, line.find(",\"samples_per_s\"")));
    }
  return out;
}

train::RunOptions quiet_opts(const std::string& dir) {
  train::RunOptions o;
  o.run_dir = dir;
  o.final_test = false;
  o.mode = exporters::ProgressReporter::Mode::quiet;
  return o;
}

}  // namespace

TEST_CASE("resume: K steps + SIGTERM + resume == N steps straight (bit-identical)", "[resume]") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    WARN("Fashion-MNIST not installed: skipped");
    return;
  }
  char tmpl[] = "/tmp/dltool-resume-XXXXXX";
  fs::path root = mkdtemp(tmpl);
  Config cfg = load_config_string(kRecipe, (root / "resume.yaml").string());
  // 200 training samples / 32 = 7 steps per epoch; 5 epochs = 35 steps; stop at K = 17
  // (epoch 3, batch 3 of 7).
  const int64_t K = 17;
  train::RunResult straight;
  {
    train::Trainer t(cfg, quiet_opts((root / "a").string()));
    straight = t.run();
  }
  REQUIRE(straight.steps == 35);
  train::RunResult first;
  {
    train::RunOptions o = quiet_opts((root / "b").string());
    o.on_step = [](int64_t step) {
      if (step == K) std::raise(SIGTERM);
    };
    train::Trainer t(cfg, o);
    first = t.run();
  }
  CHECK(first.exit_code == 75);
  CHECK(first.steps == K);
  std::string last = (root / "b/checkpoints/last.h5").string();
  REQUIRE(fs::exists(last));
  Checkpoint ckpt = load_checkpoint(last);
  CHECK(std::get<int64_t>(ckpt.trainer.at("global_step")) == K);
  CHECK(std::get<int64_t>(ckpt.trainer.at("batch_in_epoch")) == 3);
  train::RunResult second;
  {
    train::RunOptions o = quiet_opts((root / "b").string());
    o.resume_from = ckpt;
    o.resume_path = last;
    train::Trainer t(cfg, o);
    second = t.run();
  }
  REQUIRE(second.steps == 35);
  // Losses: the first K from run 1, the rest from run 2, all equal to the straight run's.
  REQUIRE(first.losses.size() + second.losses.size() == straight.losses.size());
  for (size_t i = 0; i < straight.losses.size(); ++i) {
    double got = i < first.losses.size() ? first.losses[i] : second.losses[i - first.losses.size()];
    INFO("step " << i + 1);
    CHECK(got == straight.losses[i]);
  }
  // Final weights bit-identical.
  Checkpoint a = load_checkpoint((root / "a/checkpoints/last.h5").string());
  Checkpoint b = load_checkpoint((root / "b/checkpoints/last.h5").string());
  REQUIRE(a.model.size() == b.model.size());
  for (size_t i = 0; i < a.model.size(); ++i) {
    INFO(a.model[i].first);
    CHECK(a.model[i].first == b.model[i].first);
    CHECK(a.model[i].second.to_vector<float>() == b.model[i].second.to_vector<float>());
  }
  // The logged training losses (metrics.jsonl) are identical, with no duplicated steps.
  CHECK(train_lines((root / "a").string()) == train_lines((root / "b").string()));
  fs::remove_all(root);
}

TEST_CASE("resume: changed model or data-order keys are refused, schedule keys applied", "[resume]") {
  std::vector<std::string> applied;
  std::string base = "model:\n  layers: [flatten, {type: linear, out_features: 10}]\ndata: {dataset: fashion_mnist}\ntrain: {epochs: 2}\n";
  Config a = load_config_string(base, "a.yaml");
  Config b = load_config_string(base, "b.yaml", {"train.epochs=5", "model.layers[1].out_features=12", "data.loader.batch_size=8"});
  auto refused = train::compare_resume_configs(a.resolved_yaml, b.resolved_yaml, applied);
  REQUIRE(refused.size() == 2);
  CHECK_THAT(refused[0] + refused[1], Catch::Contains("model.layers[1].out_features: checkpoint 10, now 12") &&
                                          Catch::Contains("data.loader.batch_size: checkpoint 64, now 8"));
  bool epochs_applied = false;
  for (const auto& s : applied) epochs_applied |= s.find("train.epochs: checkpoint 2, now 5") != std::string::npos;
  CHECK(epochs_applied);
}
