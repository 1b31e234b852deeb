// Exact resume and worker invariance with real files and random augmentation (issue 11): the
// first 200 Fashion-MNIST training images as PNGs in class folders (data.format image_folder),
// random_crop + random_horizontal_flip + random_rotation, 2 loader workers. Every random draw
// of a sample comes from sample_generator(seed, epoch, position), so:
//   - K steps (mid-epoch) + SIGTERM + resume == N steps straight, bit-identical weights and losses;
//   - data.loader.workers 0, 1 and 2 give the same batches (compared tensor by tensor, bit by
//     bit) and the same training losses; so do workers 0 on OpenMP teams of 1, 2 and 3 threads.
#include <omp.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "cli/run/setup.h"
#include "cli/run/trainer.h"
#include "configs/config.h"
#include "datasets/dataloader.h"
#include "datasets/idx.h"
#include "tests/support/tempdir.h"

using namespace dl;
namespace fs = std::filesystem;
using dl::test::TempDir;

namespace {

const std::string kFashion = "/usr/share/datasets/fashion-mnist/";

// 200 samples at batch 16: 13 batches (the last of 8) per epoch, 3 epochs = 39 steps.
constexpr int64_t kImages = 200;
constexpr int64_t kStepsPerEpoch = 13;
constexpr int64_t kEpochs = 3;

// ROOT is replaced by the folder's path.
const char* kRecipe = R"(data:
  format: image_folder
  root: ROOT
  color: gray
  train: {dir: train}
  augment:
    - {type: random_crop, size: 28, padding: 2}
    - {type: random_horizontal_flip}
    - {type: random_rotation, degrees: 10}
  transforms:
    - {type: to_float, scale: 0.00392156862745098}
    - {type: normalize, mean: [0.2860], std: [0.3530]}
  loader: {batch_size: 16, shuffle: true, workers: 2, prefetch: 2}
model:
  layers:
    - {type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
    - relu
    - {type: max_pool2d, kernel_size: 2}
    - flatten
    - {type: dropout, p: 0.1}
    - {type: linear, out_features: 10}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.02, momentum: 0.9, weight_decay: 0.0001}
scheduler: {type: cosine_annealing, T_max: auto, interval: step}
train: {epochs: 3, log_every: 1, eval_every: 1000, seed: 11, threads: 1}
checkpoint: {every_epoch: true, keep_last: 2}
)";

// root/train/<label>/<index:03>.png for the first kImages Fashion-MNIST training images; false
// (and a warning: the test is skipped) when dataset-fashion-mnist is not installed.
bool write_fashion_folder(const fs::path& root) {
  if (!fs::exists(kFashion + "train-images-idx3-ubyte.gz")) {
    WARN("Fashion-MNIST not installed: skipped");
    return false;
  }
  const Tensor images = data::read_idx_u8(kFashion + "train-images-idx3-ubyte.gz", 3, "images");
  const Tensor labels = data::read_idx_u8(kFashion + "train-labels-idx1-ubyte.gz", 1, "labels");
  const uint8_t* px = images.data<uint8_t>();
  const uint8_t* lb = labels.data<uint8_t>();
  for (int64_t i = 0; i < kImages; ++i) {
    const fs::path dir = root / "train" / std::to_string(lb[i]);
    fs::create_directories(dir);
    char name[16];
    std::snprintf(name, sizeof name, "%03d.png", static_cast<int>(i));
    const cv::Mat m(28, 28, CV_8UC1, const_cast<uint8_t*>(px + i * 28 * 28));
    REQUIRE(cv::imwrite((dir / name).string(), m));
  }
  return true;
}

Config recipe(const fs::path& root, const std::vector<std::string>& overrides = {}) {
  std::string yaml = kRecipe;
  yaml.replace(yaml.find("ROOT"), 4, root.string());
  return load_config_string(yaml, (root / "folder_resume.yaml").string(), overrides);
}

train::RunOptions quiet_opts(const fs::path& dir) {
  train::RunOptions o;
  o.run_dir = dir.string();
  o.final_test = false;
  o.mode = exporters::ProgressReporter::Mode::quiet;
  return o;
}

// The tensor's bytes as 32-bit words (f32 and i64 alike): == is bit equality, -0 != +0, NaN == NaN.
std::vector<uint32_t> bits(const Tensor& t) {
  const Tensor c = t.contiguous();
  std::vector<uint32_t> out(static_cast<size_t>(c.numel()) * dtype_size(c.dtype()) / 4);
  std::memcpy(out.data(), c.raw_data(), out.size() * 4);
  return out;
}

// Bit equality as a bool, and the first differing batch ("" when none): Catch would print every
// word of both sides of a failed == on these vectors.
bool same_bits(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) { return a == b; }
template <class T>
std::string first_difference(const std::vector<std::vector<T>>& got, const std::vector<std::vector<T>>& want,
                             size_t offset = 0) {
  if (got.size() + offset != want.size())
    return std::to_string(got.size()) + " batches, expected " + std::to_string(want.size() - offset);
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i + offset]) return "batch " + std::to_string(i + offset) + " differs";
  return "";
}

struct EpochBatches {
  std::vector<std::vector<int64_t>> indices;
  std::vector<std::vector<uint32_t>> inputs, targets;
};

// The batches of `epoch` from batch `skip` on, through the recipe's training loader options.
EpochBatches load_epoch(const Config& cfg, const data::DatasetPtr& train, int64_t epoch, int64_t skip = 0) {
  data::LoaderOptions lo = train::loader_options(cfg, /*training=*/true);
  lo.sampler = train::build_sampler(cfg, *train);
  data::DataLoader loader(train, std::move(lo));
  loader.set_state({epoch, skip, static_cast<uint64_t>(cfg.train.seed)});
  EpochBatches e;
  while (auto b = loader.next()) {
    CHECK(b->index_in_epoch == skip + static_cast<int64_t>(e.inputs.size()));
    e.indices.push_back(b->indices);
    e.inputs.push_back(bits(b->input()));
    e.targets.push_back(bits(b->target()));
  }
  return e;
}

}  // namespace

TEST_CASE("resume, image folder + augmentation + 2 workers: K steps + SIGTERM + resume == N straight",
          "[resume][image_folder]") {
  TempDir tmp;
  if (!write_fashion_folder(tmp.path / "data")) return;
  const Config cfg = recipe(tmp.path / "data");
  REQUIRE(cfg.data.loader.workers == 2);
  const int64_t N = kStepsPerEpoch * kEpochs;
  const int64_t K = 20;  // epoch 1, after its 7th of 13 batches
  train::RunResult straight;
  {
    train::Trainer t(cfg, quiet_opts(tmp.path / "a"));
    straight = t.run();
  }
  REQUIRE(straight.steps == N);
  train::RunResult first;
  {
    train::RunOptions o = quiet_opts(tmp.path / "b");
    o.on_step = [](int64_t step) {
      if (step == K) std::raise(SIGTERM);
    };
    train::Trainer t(cfg, o);
    first = t.run();
  }
  CHECK(first.exit_code == 75);
  REQUIRE(first.steps == K);
  const std::string last = (tmp.path / "b/checkpoints/last.h5").string();
  REQUIRE(fs::exists(last));
  const Checkpoint ckpt = load_checkpoint(last);
  CHECK(std::get<int64_t>(ckpt.trainer.at("global_step")) == K);
  CHECK(std::get<int64_t>(ckpt.trainer.at("batch_in_epoch")) == K - kStepsPerEpoch);
  train::RunResult second;
  {
    train::RunOptions o = quiet_opts(tmp.path / "b");
    o.resume_from = ckpt;
    o.resume_path = last;
    train::Trainer t(cfg, o);
    second = t.run();
  }
  REQUIRE(second.steps == N);
  // Every step's loss: the first K from run 1, the rest from the resumed run.
  REQUIRE(first.losses.size() + second.losses.size() == straight.losses.size());
  for (size_t i = 0; i < straight.losses.size(); ++i) {
    const double got = i < first.losses.size() ? first.losses[i] : second.losses[i - first.losses.size()];
    INFO("step " << i + 1);
    CHECK(got == straight.losses[i]);
  }
  const Checkpoint a = load_checkpoint((tmp.path / "a/checkpoints/last.h5").string());
  const Checkpoint b = load_checkpoint((tmp.path / "b/checkpoints/last.h5").string());
  REQUIRE(a.model.size() == b.model.size());
  for (size_t i = 0; i < a.model.size(); ++i) {
    INFO(a.model[i].first);
    CHECK(a.model[i].first == b.model[i].first);
    CHECK(same_bits(bits(a.model[i].second), bits(b.model[i].second)));
  }
}

TEST_CASE("image folder + augmentation: workers 0, 1 and 2 give bit-identical batches and losses",
          "[resume][image_folder]") {
  TempDir tmp;
  if (!write_fashion_folder(tmp.path / "data")) return;
  const Config base = recipe(tmp.path / "data");
  const data::DatasetPtr train = train::open_data(base).train;
  REQUIRE(train->size() == kImages);

  // The loader's batches of epoch 0, tensor by tensor.
  const int saved_team = omp_get_max_threads();
  omp_set_num_threads(1);  // the reference: one thread prepares every sample in order
  const EpochBatches want = load_epoch(recipe(tmp.path / "data", {"data.loader.workers=0"}), train, 0);
  omp_set_num_threads(saved_team);
  REQUIRE(want.inputs.size() == static_cast<size_t>(kStepsPerEpoch));
  // workers 1 and 2, and workers 0 on OpenMP teams of 2 and 3 threads (the synchronous loader
  // prepares a batch's samples on the caller's team).
  for (const auto& [workers, team] : std::initializer_list<std::pair<int, int>>{{1, 0}, {2, 0}, {0, 2}, {0, 3}}) {
    INFO("workers " << workers << ", team " << team);
    if (team) omp_set_num_threads(team);
    const EpochBatches got =
        load_epoch(recipe(tmp.path / "data", {"data.loader.workers=" + std::to_string(workers)}), train, 0);
    omp_set_num_threads(saved_team);
    CHECK(first_difference(got.indices, want.indices) == "");
    CHECK(first_difference(got.targets, want.targets) == "");
    CHECK(first_difference(got.inputs, want.inputs) == "");
  }
  // Resuming the loader mid-epoch (set_state) yields the same remaining batches.
  const EpochBatches tail = load_epoch(base, train, 0, 5);
  CHECK(first_difference(tail.indices, want.indices, 5) == "");
  CHECK(first_difference(tail.inputs, want.inputs, 5) == "");
  // The augmentation is really on: the batch is the training pipeline applied with each sample's
  // own generator, sample_generator(seed, epoch, position) (so workers cannot change it), and
  // differs from the same samples without augmentation (the evaluation pipeline).
  {
    const data::TransformPipeline augmented = train::build_transforms(base.data, /*training=*/true);
    const data::TransformPipeline plain = train::build_transforms(base.data, /*training=*/false);
    std::vector<data::Sample> with, without;
    for (size_t k = 0; k < want.indices[0].size(); ++k) {
      const Tensor x = train->get(want.indices[0][k]).at(data::kInput);
      Generator g = data::sample_generator(static_cast<uint64_t>(base.train.seed), 0, static_cast<int64_t>(k));
      with.emplace_back().set(data::kInput, augmented(x, g));
      without.emplace_back().set(data::kInput, plain(x, g));
    }
    CHECK(same_bits(bits(data::collate(with).at(data::kInput)), want.inputs[0]));
    CHECK_FALSE(same_bits(bits(data::collate(without).at(data::kInput)), want.inputs[0]));
  }

  // Training: the first 15 steps (past the epoch boundary) have the same losses.
  std::vector<std::vector<double>> losses;
  for (const int workers : {0, 1, 2}) {
    const Config cfg =
        recipe(tmp.path / "data", {"data.loader.workers=" + std::to_string(workers), "train.max_steps=15"});
    train::RunOptions o = quiet_opts(tmp.path / ("w" + std::to_string(workers)));
    o.write_outputs = false;
    train::Trainer t(cfg, o);
    const train::RunResult r = t.run();
    REQUIRE(r.steps == 15);
    losses.push_back(r.losses);
  }
  REQUIRE(losses[0].size() == 15);
  CHECK(losses[1] == losses[0]);
  CHECK(losses[2] == losses[0]);
}
