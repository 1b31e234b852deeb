// `dltool eval`'s report: per-class precision/recall/F1 and macro averages (sklearn's numbers),
// classes named from the checkpoint (/data/classes) or else the config's data, regression
// metrics instead of accuracy; class names in checkpoints, `inspect` and the ONNX metadata.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/run/evaluate.h"
#include "exporters/checkpoint.h"
#include "tests/support/dltool.h"
#include "tests/support/fixtures.h"
#include "tests/support/process.h"
#include "tests/support/tempdir.h"

namespace fs = std::filesystem;

namespace {

using dl::test::run_dltool, dl::test::write_file, dl::test::TempDir;

bool have_fashion() { return fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"); }

// A 30-step MLP on Fashion-MNIST (a few seconds): a checkpoint with class names to evaluate.
std::string train_tiny(const TempDir& tmp) {
  const std::string recipe = (tmp.path / "tiny.yaml").string();
  write_file(recipe, "model:\n  layers: [flatten, {type: linear, out_features: 16}, relu, {type: linear, out_features: 10}]\n"
                     "data:\n  dataset: fashion_mnist\n  val_size: 1000\n  loader: {batch_size: 32}\n"
                     "optimizer: {type: sgd, lr: 0.05, momentum: 0.9}\n"
                     "train: {epochs: 1, max_steps: 30, log_every: 10, eval_every: 30}\n");
  const std::string run = (tmp.path / "run").string();
  auto r = run_dltool({"train", recipe, "--run-dir", run});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  return run;
}

}  // namespace

TEST_CASE("add_class_metrics: precision, recall, F1 and macro averages as sklearn computes them", "[cli][eval]") {
  dl::train::EvalResult r;
  // Class 1 has neither samples nor predictions, class 3 samples but no correct prediction.
  r.confusion = {{5, 1, 0, 2}, {0, 0, 0, 0}, {2, 1, 3, 0}, {0, 0, 4, 0}};
  dl::train::add_class_metrics(r);
  // sklearn.metrics.precision_recall_fscore_support(y_true, y_pred, labels=[0, 1, 2, 3], zero_division=0)
  // and average='macro' on the samples this confusion matrix counts.
  const std::vector<double> precision = {0.71428571, 0, 0.42857143, 0}, recall = {0.625, 0, 0.5, 0},
                            f1 = {0.66666667, 0, 0.46153846, 0};
  const std::vector<int64_t> support = {8, 0, 6, 4};
  REQUIRE(r.precision.size() == 4);
  for (size_t c = 0; c < 4; ++c) {
    INFO("class " << c);
    CHECK(r.precision[c] == Approx(precision[c]).margin(1e-8));
    CHECK(r.recall[c] == Approx(recall[c]).margin(1e-8));
    CHECK(r.f1[c] == Approx(f1[c]).margin(1e-8));
    CHECK(r.support[c] == support[c]);
  }
  CHECK(r.macro_precision == Approx(0.2857142857142857));
  CHECK(r.macro_recall == Approx(0.28125));
  CHECK(r.macro_f1 == Approx(0.28205128205128205));
}

TEST_CASE("checkpoints keep the class names in /data/classes, files without them stay valid", "[cli][eval][checkpoint]") {
  TempDir tmp;
  dl::Checkpoint c;
  c.model = {{"w", dl::from_vector(std::vector<float>{1, 2}, {2})}};
  c.class_names = {"T-shirt/top", "crème brûlée", ""};
  const std::string with = (tmp.path / "with.h5").string(), without = (tmp.path / "without.h5").string();
  dl::save_checkpoint(with, c);
  CHECK(dl::load_checkpoint(with).class_names == c.class_names);
  CHECK(dl::load_checkpoint(with, /*weights_only=*/true).class_names == c.class_names);
  c.class_names.clear();
  dl::save_checkpoint(without, c);
  CHECK(dl::load_checkpoint(without).class_names.empty());
  c.class_names = {std::string("a\0b", 3)};
  CHECK_THROWS_WITH(dl::save_checkpoint(without, c), Catch::Contains("class name contains a NUL byte"));
  // classes.txt and the terminal show them escaped: one line each, reversible.
  CHECK(dl::class_name_text("a\\b\n\r\t\x01 é") == "a\\\\b\\n\\r\\t\\x01 é");
  auto h5py = dl::test::run_process(
      {"/usr/bin/python3", "-c", "import h5py,sys; print([s.decode() for s in h5py.File(sys.argv[1])['data/classes']])", with});
  if (h5py.exit_code == 0) CHECK_THAT(h5py.out, Catch::Contains("['T-shirt/top', 'crème brûlée', '']"));
}

TEST_CASE("dltool eval: per-class precision/recall/F1 by class name, text and --json", "[cli][eval]") {
  if (!have_fashion()) return;
  TempDir tmp;
  const std::string run = train_tiny(tmp);
  CHECK(dl::test::read_file(run + "/classes.txt").rfind("T-shirt/top\nTrouser\nPullover\n", 0) == 0);

  auto json = run_dltool({"eval", run, "--json"});
  INFO(json.out);
  REQUIRE(json.exit_code == 0);
  CHECK_THAT(json.out, Catch::Contains("\"classes\":[\"T-shirt/top\",\"Trouser\"") && Catch::Contains("\"precision\":[") &&
                           Catch::Contains("\"recall\":[") && Catch::Contains("\"f1\":[") &&
                           Catch::Contains("\"support\":[1000,1000,1000,1000,1000,1000,1000,1000,1000,1000]") &&
                           Catch::Contains("\"macro_f1\":"));
  // Macro recall over 10 equally supported classes is the accuracy.
  const double acc = std::strtod(json.out.c_str() + json.out.find("\"accuracy\":") + 11, nullptr);
  const double macro_recall = std::strtod(json.out.c_str() + json.out.find("\"macro_recall\":") + 15, nullptr);
  CHECK(macro_recall == Approx(acc).margin(1e-12));

  // The checkpoint's names win over the config's; without them, the config's data names them.
  const std::string last = run + "/checkpoints/last.h5";
  dl::Checkpoint c = dl::load_checkpoint(last);
  c.class_names = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"};
  const std::string renamed = (tmp.path / "renamed.h5").string(), bare = (tmp.path / "bare.h5").string();
  dl::save_checkpoint(renamed, c);
  c.class_names.clear();
  dl::save_checkpoint(bare, c);
  auto r = run_dltool({"eval", renamed});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("precision   recall       f1  support") &&
                        Catch::Matches("(.|\n)*   9  c9 +[0-9.]+ +[0-9.]+ +[0-9.]+ +1000\n(.|\n)*") &&
                        Catch::Contains("macro avg") && Catch::Contains("confusion matrix") && !Catch::Contains("Ankle boot"));
  auto b = run_dltool({"eval", bare, "--split", "val"});
  INFO(b.out);
  CHECK_THAT(b.out, Catch::Contains(" on val (1000 samples)") && Catch::Contains("   9  Ankle boot "));

  auto inspect = run_dltool({"inspect", last});
  CHECK_THAT(inspect.out, Catch::Contains("classes (10): 0=T-shirt/top 1=Trouser"));
  auto ij = run_dltool({"inspect", last, "--json"});
  CHECK_THAT(ij.out, Catch::Contains("\"classes\":[\"T-shirt/top\","));

  // export: the names as ONNX metadata_props "dltool.classes", newline-joined (protobuf text
  // keeps them verbatim: look for the bytes).
  const std::string onnx = (tmp.path / "m.onnx").string();
  auto e = run_dltool({"export", last, "-o", onnx});
  INFO(e.out);
  REQUIRE(e.exit_code == 0);
  const std::string bytes = dl::test::read_file(onnx);
  CHECK(bytes.find("dltool.classes") != std::string::npos);
  CHECK(bytes.find("T-shirt/top\nTrouser\nPullover\nDress\nCoat\nSandal\nShirt\nSneaker\nBag\nAnkle boot") != std::string::npos);
}

TEST_CASE("dltool eval: a regression checkpoint reports mae, rmse and r2 instead of accuracy", "[cli][eval]") {
  TempDir tmp;
  std::string csv = "x1,x2,y\n";
  for (int i = 0; i < 40; ++i) {
    const double x1 = (i * 37 % 17) / 8.0, x2 = (i * 11 % 13) / 6.0;
    csv += std::to_string(x1) + "," + std::to_string(x2) + "," + std::to_string(2 * x1 - x2 + 0.5 + ((i * 7) % 5 - 2) * 0.1) + "\n";
  }
  write_file((tmp.path / "t.csv").string(), csv);
  const std::string recipe = (tmp.path / "r.yaml").string();
  write_file(recipe, "model:\n  layers: [{type: linear, out_features: 1}]\n"
                     "data:\n  dataset: toy\n  format: csv\n  root: " + tmp.path.string() + "\n  target: [y]\n"
                     "  target_kind: regression\n  train: {file: t.csv}\n  test_fraction: 0.25\n  transforms: []\n"
                     "  loader: {batch_size: 8}\n"
                     "loss: {type: mse_loss}\noptimizer: {type: sgd, lr: 0.05}\ntrain: {epochs: 5, log_every: 5}\n");
  const std::string run = (tmp.path / "run").string();
  auto t = run_dltool({"train", recipe, "--run-dir", run});
  INFO(t.out);
  REQUIRE(t.exit_code == 0);
  auto text = run_dltool({"eval", run});
  INFO(text.out);
  REQUIRE(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("mae ") && Catch::Contains("rmse ") && Catch::Contains("r2 ") &&
                           !Catch::Contains("accuracy") && !Catch::Contains("confusion"));
  auto json = run_dltool({"eval", run, "--json"});
  INFO(json.out);
  REQUIRE(json.exit_code == 0);
  CHECK_THAT(json.out, Catch::Contains("\"mae\":") && !Catch::Contains("accuracy") && !Catch::Contains("confusion"));
  // mse_loss (mean) is rmse squared.
  const double loss = std::strtod(json.out.c_str() + json.out.find("\"loss\":") + 7, nullptr);
  const double rmse = std::strtod(json.out.c_str() + json.out.find("\"rmse\":") + 7, nullptr);
  CHECK(rmse * rmse == Approx(loss).epsilon(1e-5));
}
