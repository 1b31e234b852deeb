// Bad data that only the training run can see: class labels the model has no output for, a
// random split that selects nothing, a sampler that does not fit the data. Each is a clear
// error before the first step (DataError -> exit 1, configuration -> exit 2), never a crash.
#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "cli/run/trainer.h"
#include "configs/config.h"
#include "datasets/data_error.h"
#include "datasets/idx.h"
#include "tests/support/dltool.h"
#include "tests/support/tempdir.h"

using namespace dl;
using dl::test::TempDir;
using Catch::Matchers::Contains;

namespace {

// train/test IDX pairs of 4x4 images with labels i % classes, and a recipe over them.
std::string write_recipe(const TempDir& dir, int64_t classes, int64_t out_features, const std::string& extra) {
  for (const char* split : {"train", "test"}) {
    const int64_t n = 40;
    std::vector<uint8_t> img(static_cast<size_t>(n * 16)), lab(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      lab[static_cast<size_t>(i)] = static_cast<uint8_t>(i % classes);
      for (int64_t p = 0; p < 16; ++p) img[static_cast<size_t>(i * 16 + p)] = static_cast<uint8_t>(i * 7 + p);
    }
    data::write_idx_u8(dir.file(std::string(split) + "-images"), {n, 4, 4}, img.data(), false);
    data::write_idx_u8(dir.file(std::string(split) + "-labels"), {n}, lab.data(), false);
  }
  const std::string path = dir.file("recipe.yaml");
  std::ofstream(path) << "data:\n  format: idx\n  root: " << dir.path.string()
                      << "\n  train: {images: train-images, labels: train-labels}"
                         "\n  test: {images: test-images, labels: test-labels}\n"
                      << extra << "  loader: {batch_size: 8}\n"
                      << "model:\n  layers: [flatten, {type: linear, out_features: " << out_features << "}]\n"
                      << "train: {epochs: 1}\n";
  return path;
}

}  // namespace

TEST_CASE("data errors: labels beyond the model's outputs are refused before training", "[datasets][errors][train]") {
  TempDir dir;
  const std::string recipe = write_recipe(dir, 12, 10, "");
  train::RunOptions opt;
  opt.write_outputs = false;
  opt.mode = exporters::ProgressReporter::Mode::quiet;
  try {
    train::Trainer t(load_config(recipe), opt);
    FAIL("a model with 10 outputs trained on 12 classes");
  } catch (const DataError& e) {
    CHECK_THAT(e.what(), Contains("12 classes") && Contains("10 values per sample") && Contains("out_features"));
  }
  // The same through the binary: a data error, exit code 1, nothing trained.
  auto r = test::run_dltool({"train", recipe, "--run-dir", dir.file("run")});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Contains("12 classes"));
  // With enough outputs it trains.
  CHECK(test::run_dltool({"train", write_recipe(dir, 12, 12, ""), "--run-dir", dir.file("run2")}).exit_code == 0);
}

TEST_CASE("data errors: random splits that select nothing or leave no training samples", "[datasets][errors]") {
  TempDir dir;
  auto r = test::run_dltool({"train", write_recipe(dir, 4, 4, "  val_fraction: 0.01\n"), "--run-dir", dir.file("a")});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Contains("val_fraction selects no sample") && Contains("40 samples"));
  r = test::run_dltool({"train", write_recipe(dir, 4, 4, "  val_fraction: 0.5\n  test_fraction: 0.5\n"), "--run-dir",
                        dir.file("b")});
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.out, Contains("test"));
  // val_size together with a random fraction is ambiguous: a configuration error, exit 2.
  r = test::run_dltool({"train", write_recipe(dir, 4, 4, "  val_size: 5\n  val_fraction: 0.2\n"), "--run-dir",
                        dir.file("c")});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Contains("val_size") && Contains("val_fraction"));
}

TEST_CASE("data errors: a sampler that does not fit the data is a configuration error", "[datasets][errors][samplers]") {
  TempDir dir;
  auto r = test::run_dltool({"train",
                             write_recipe(dir, 4, 4, "  loader_x: 0\n"),  // an unknown key first: exit 2
                             "--run-dir", dir.file("a")});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Contains("loader_x"));
  r = test::run_dltool({"train", write_recipe(dir, 4, 4, ""), "data.loader.sampler={type: weighted_random, weights: [1, 2]}",
                        "--run-dir", dir.file("b")});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Contains("data.loader.sampler") && Contains("weights"));
}
