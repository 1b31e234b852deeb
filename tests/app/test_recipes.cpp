// Recipe golden tests: each recipe in recipes/fashion_mnist/ trains 20 steps on the real
// Fashion-MNIST data with shuffle off and a fixed seed, and must reproduce the loss values
// committed in tests/golden/<recipe>.txt (rtol 1e-5). Any numerical change in the engine,
// the initialisation, the data pipeline or the optimizer shows up here.
//
// To accept a deliberate change: DLTOOL_UPDATE_GOLDEN=1 build/app_tests "[golden]"
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>

#include "configs/config.h"
#include "cli/run/trainer.h"
#include "tests/support/fixtures.h"

using namespace dl;

namespace {

std::vector<double> read_golden(const std::string& path) {
  std::ifstream in(path);
  std::vector<double> v;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    v.push_back(std::stod(line));
  }
  return v;
}

// `recipe`: the recipe's path under the source tree (default recipes/fashion_mnist/<name>.yaml),
// `data`: a file it reads, whose absence skips the test.
void golden_recipe(const std::string& name, const std::string& recipe = "",
                   const std::string& data = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") {
  if (!std::filesystem::exists(data)) {
    WARN(data << " is not installed (scripts/setup.sh installs the datasets): skipped");
    return;
  }
  Config cfg = load_config(test::source_path(recipe.empty() ? "recipes/fashion_mnist/" + name + ".yaml" : recipe),
                           {"data.loader.shuffle=false", "train.max_steps=20", "train.log_every=100",
                            "train.seed=0", "data.loader.prefetch=0"});
  train::RunOptions opt;
  opt.write_outputs = false;
  opt.final_test = false;
  opt.mode = exporters::ProgressReporter::Mode::quiet;
  train::Trainer trainer(cfg, opt);
  train::RunResult r = trainer.run();
  REQUIRE(r.losses.size() == 20);
  std::string path = test::source_path("tests/golden/" + name + ".txt");
  if (std::getenv("DLTOOL_UPDATE_GOLDEN")) {
    std::ofstream out(path);
    out << "# " << name << ".yaml: training loss of steps 1-20 (shuffle off, seed 0)\n";
    out << std::setprecision(9);
    for (double l : r.losses) out << l << "\n";
    WARN("wrote " << path);
    return;
  }
  std::vector<double> expected = read_golden(path);
  REQUIRE(expected.size() == 20);
  for (size_t i = 0; i < 20; ++i) {
    INFO(name << " step " << i + 1);
    CHECK(r.losses[i] == Approx(expected[i]).epsilon(1e-5));
  }
}

}  // namespace

TEST_CASE("golden: mlp recipe reproduces its first 20 losses", "[golden]") { golden_recipe("mlp"); }
TEST_CASE("golden: lenet recipe reproduces its first 20 losses", "[golden]") { golden_recipe("lenet"); }
TEST_CASE("golden: cnn_bn recipe reproduces its first 20 losses", "[golden]") { golden_recipe("cnn_bn"); }
TEST_CASE("golden: triplet recipe reproduces its first 20 losses", "[golden][triplet]") { golden_recipe("triplet"); }
TEST_CASE("golden: stn recipe reproduces its first 20 losses", "[golden][grid_sample]") { golden_recipe("stn"); }
TEST_CASE("golden: resnet20 recipe (model.blocks) reproduces its first 20 losses", "[golden][blocks]") { golden_recipe("resnet20"); }
TEST_CASE("golden: lstm recipe reproduces its first 20 losses", "[golden][rnn]") { golden_recipe("lstm"); }
TEST_CASE("golden: autoencoder recipe (conv_transpose2d, loss.target: input) reproduces its first 20 losses", "[golden][conv_transpose]") {
  golden_recipe("autoencoder");
}
TEST_CASE("golden: char_lstm recipe (text corpus, embedding, lstm, num_classes) reproduces its first 20 losses",
          "[golden][text]") {
  golden_recipe("char_lstm", "recipes/text/char_lstm.yaml", "/usr/share/games/fortunes/fortunes");
}
TEST_CASE("golden: fortune_classes recipe (text_classification, packed lstm on input_lengths) reproduces its first 20 losses",
          "[golden][text]") {
  golden_recipe("fortune_classes", "recipes/text/fortune_classes.yaml", "/usr/share/games/fortunes/computers");
}
TEST_CASE("golden: crnn recipe (permute, ctc_loss on fashion_strips) reproduces its first 20 losses", "[golden][ctc]") {
  golden_recipe("crnn");
}
