// Users see their data: `dltool data` (counts, balance, shapes, mean/std, decode errors), the
// run directory's classes.txt and the TensorBoard grid of the first training batch
// (exporters::make_image_grid against torchvision's make_grid).
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "exporters/tensorboard.h"
#include "tests/support/dltool.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/tempdir.h"

namespace fs = std::filesystem;

namespace {

using dl::test::read_file;
using dl::test::TempDir;
using dl::test::run_dltool;
using dl::test::write_file;

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// Raw IDX files: n u8 images of 2x3 with pixel k = (start + 7k) mod 256, and `labels`.
void write_idx(const fs::path& dir, const std::string& split, const std::vector<uint8_t>& labels, int start) {
  const uint32_t n = static_cast<uint32_t>(labels.size());
  std::string images = be32(0x0803) + be32(n) + be32(2) + be32(3);
  for (uint32_t k = 0; k < n * 6; ++k) images += static_cast<char>((start + 7 * k) % 256);
  write_file((dir / (split + "-images")).string(), images);
  write_file((dir / (split + "-labels")).string(), be32(0x0801) + be32(n) + std::string(labels.begin(), labels.end()));
}

// A recipe over IDX files in `dir`: 12 training images (7 apple, 3 banana, 2 cherry), 6 test
// images (2 of each class).
std::string tiny_recipe(const TempDir& tmp) {
  write_idx(tmp.path, "train", {0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 0}, 0);
  write_idx(tmp.path, "test", {0, 1, 2, 0, 1, 2}, 100);
  const std::string path = (tmp.path / "tiny.yaml").string();
  write_file(path, "model:\n  layers: [flatten, {type: linear, out_features: 3}]\n"
                   "data:\n  dataset: tiny\n  format: idx\n  root: " + tmp.path.string() + "\n"
                   "  classes: [apple, banana, cherry]\n"
                   "  train: {images: train-images, labels: train-labels}\n"
                   "  test: {images: test-images, labels: test-labels}\n"
                   "  transforms:\n    - {type: to_float, scale: 0.00392156862745098}\n"
                   "    - {type: normalize, mean: [0.5], std: [0.5]}\n"
                   "  loader: {batch_size: 4}\n"
                   "optimizer: {type: sgd, lr: 0.01}\ntrain: {epochs: 1, max_steps: 2, log_every: 1}\n");
  return path;
}

// The number after `key` at or after `from` in JSON text `s`.
double json_number(const std::string& s, const std::string& key, size_t from = 0) {
  const size_t at = s.find(key, from);
  REQUIRE(at != std::string::npos);
  return std::strtod(s.c_str() + at + key.size(), nullptr);
}

}  // namespace

TEST_CASE("dltool data: counts, imbalance, shapes and mean/std of a small IDX recipe", "[cli][data]") {
  TempDir tmp;
  const std::string recipe = tiny_recipe(tmp);
  auto r = run_dltool({"data", recipe});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("train: 12 samples") && Catch::Contains("test: 6 samples") &&
                        Catch::Contains("uint8 [1, 2, 3] -> float32 [1, 2, 3] after to_float") &&
                        Catch::Contains("target    class_index, 3 classes"));
  CHECK_THAT(r.out, Catch::Matches("(.|\n)*apple +7 +58\\.3%(.|\n)*banana +3 +25\\.0%(.|\n)*cherry +2 +16\\.7%(.|\n)*"));
  // max/min = 7/2 > 1.5 on train; the test split is balanced.
  CHECK_THAT(r.out, Catch::Contains("imbalanced: 'apple' has 7 samples, 'cherry' 2 (max/min 3.50); consider "
                                    "data.loader.sampler: {type: weighted_random, balanced: true}") &&
                        Catch::Contains("balanced (max/min class count 1.00)"));
  // numpy: (np.arange(72) * 7 % 256 / 255).mean(), .std(): the statistics skip normalize.
  CHECK_THAT(r.out, Catch::Contains("input mean [0.4865] std [0.2856]  per channel, after to_float(scale=0.00392156862745098), over 12 samples") &&
                        Catch::Contains("{type: normalize, mean: [0.4865], std: [0.2856]}"));

  auto j = run_dltool({"data", recipe, "--split", "train", "--max-samples", "5", "--json"});
  INFO(j.out);
  REQUIRE(j.exit_code == 0);
  CHECK_THAT(j.out, Catch::Contains("\"split\":\"train\"") && !Catch::Contains("\"split\":\"test\"") &&
                        Catch::Contains("\"classes\":[{\"index\":0,\"name\":\"apple\",\"count\":7}") &&
                        Catch::Contains("\"imbalanced\":true") && Catch::Contains("\"decoded_samples\":5") &&
                        Catch::Contains("\"decoded_first_only\":true") && Catch::Contains("\"ok\":true"));
  // The first 5 images only: np.arange(30) * 7 % 256 / 255 -> mean 0.39803922, std 0.23760036.
  CHECK(json_number(j.out, "\"input_stats\":{\"mean\":[") == Approx(0.39803922).margin(1e-7));
  CHECK(json_number(j.out, "\"std\":[", j.out.find("input_stats")) == Approx(0.23760036).margin(1e-7));

  auto bad = run_dltool({"data", recipe, "--split", "val"});
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.out, Catch::Contains("the config has no val split"));
}

TEST_CASE("dltool data: the first undecodable image is reported with exit code 1", "[cli][data]") {
  TempDir tmp;
  fs::create_directories(tmp.path / "train" / "a");
  fs::create_directories(tmp.path / "train" / "b");
  // Minimal valid 1x1 gray PNGs are awkward to write by hand: a BMP is (54-byte header).
  auto bmp = [](uint8_t v) {
    auto le32 = [](uint32_t x) { return std::string{char(x), char(x >> 8), char(x >> 16), char(x >> 24)}; };
    std::string h = "BM" + le32(58) + le32(0) + le32(54) + le32(40) + le32(1) + le32(1) + std::string{1, 0} +
                    std::string{24, 0} + le32(0) + le32(4) + le32(2835) + le32(2835) + le32(0) + le32(0);
    return h + std::string{char(v), char(v), char(v), 0};
  };
  write_file((tmp.path / "train" / "a" / "1.bmp").string(), bmp(51));
  write_file((tmp.path / "train" / "a" / "2.bmp").string(), bmp(102));
  write_file((tmp.path / "train" / "b" / "3.bmp").string(), bmp(153));
  write_file((tmp.path / "train" / "b" / "4.png").string(), "\x89PNG\r\n\x1a\n not really");
  const std::string recipe = (tmp.path / "r.yaml").string();
  write_file(recipe, "model:\n  layers: [flatten, {type: linear, out_features: 2}]\n"
                     "data:\n  dataset: pics\n  format: image_folder\n  root: " + tmp.path.string() + "\n"
                     "  color: gray\n  train: {dir: train}\n  transforms: [{type: to_float}]\n"
                     "  loader: {batch_size: 2, workers: 2}\n"
                     "optimizer: {type: sgd, lr: 0.01}\ntrain: {epochs: 1}\n");
  auto r = run_dltool({"data", recipe});
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("train: 4 samples") && Catch::Contains("decode error: sample 3: ") &&
                        Catch::Contains("train/b/4.png"));
  // The other three images still count: (51 + 102 + 153) / 3 / 255 = 0.4.
  CHECK_THAT(r.out, Catch::Contains("input mean [0.4000]") && Catch::Contains("over 3 samples"));
  auto j = run_dltool({"data", recipe, "--json"});
  CHECK(j.exit_code == 1);
  CHECK_THAT(j.out, Catch::Contains("\"decode_error\":{\"index\":3,\"where\":\"") && Catch::Contains("\"ok\":false"));
}

TEST_CASE("dltool data: Fashion-MNIST's mean/std for normalize", "[cli][data]") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) return;
  // All 60000 training images (no validation tail): torchvision's well-known 0.2860 / 0.3530.
  auto r = run_dltool({"data", dl::test::source_path("recipes/fashion_mnist/lenet.yaml"), "data.val_size=0", "--split",
                   "train", "--max-samples", "0", "--json"});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("\"samples\":60000") && Catch::Contains("\"decoded_samples\":60000") &&
                        Catch::Contains("{\"index\":9,\"name\":\"Ankle boot\",\"count\":6000}") &&
                        Catch::Contains("\"imbalanced\":false"));
  CHECK(json_number(r.out, "\"input_stats\":{\"mean\":[") == Approx(0.2860).margin(5e-5));
  CHECK(json_number(r.out, "\"std\":[", r.out.find("input_stats")) == Approx(0.3530).margin(5e-5));
}

TEST_CASE("make_image_grid is torchvision's make_grid(normalize=True) made 8-bit like add_image", "[tensorboard][data]") {
  for (const auto& c : dl::test::load_fixtures("image_grid.txt")) {
    INFO(c.name);
    const dl::Tensor input = c.has("u8") ? c.t("input").to(dl::DType::U8) : c.t("input");
    const dl::exporters::ImageGrid g = dl::exporters::make_image_grid(input);
    const dl::Tensor& want = c.t("grid");  // i64 [H, W, 3]
    REQUIRE(g.height == want.size(0));
    REQUIRE(g.width == want.size(1));
    CHECK(g.channels == 3);
    const std::vector<int64_t> w = want.to_vector<int64_t>();
    int64_t differ = 0;
    for (size_t i = 0; i < w.size(); ++i) differ += g.hwc[i] != w[i];
    CHECK(differ == 0);
  }
  CHECK_THROWS_AS(dl::exporters::make_image_grid(dl::from_vector(std::vector<float>(8), {1, 2, 2, 2})), std::invalid_argument);
}

TEST_CASE("training writes classes.txt and the first batch as a TensorBoard image grid", "[cli][data][tensorboard]") {
  TempDir tmp;
  const std::string recipe = tiny_recipe(tmp);
  const std::string run = (tmp.path / "run").string();
  auto r = run_dltool({"train", recipe, "--run-dir", run});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK(read_file(run + "/classes.txt") == "apple\nbanana\ncherry\n");
  std::string events;
  for (const auto& e : fs::directory_iterator(run))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) events = e.path().string();
  REQUIRE(!events.empty());
  auto ev = dl::test::run_process({"/usr/bin/python3", dl::test::source_path("tests/app/read_tfevents.py"), events});
  INFO(ev.out << ev.err);
  REQUIRE(ev.exit_code == 0);
  // 4 images of 2x3 in one row of the grid: height 2 + 2 * 2, width 4 * (3 + 2) + 2; RGB.
  CHECK_THAT(ev.out, Catch::Contains("image 0 data/train_batch 6 22 3 "));
}
