// CLI tests: run the real dltool binary on real files and check exit codes and output.
#include <catch2/catch.hpp>

#include "tests/support/tempdir.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/fixtures.h"
#include "tests/support/process.h"

namespace fs = std::filesystem;

namespace {

using dl::test::TempDir;

using Run = dl::test::ProcessResult;  // exit_code; out = stdout and stderr together

// Runs `dltool ARGS` (stdin is /dev/null so nothing can wait on it).
Run dltool(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {DLTOOL_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return dl::test::run_process(argv, {.merge_stderr = true});
}

bool have_data() { return fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"); }

const char* kTinyMlp = R"(model:
  layers:
    - flatten
    - {type: linear, out_features: 16}
    - relu
    - {type: linear, out_features: 10}
data:
  dataset: fashion_mnist
  val_size: 1000
  loader: {batch_size: 32}
optimizer: {type: sgd, lr: 0.05, momentum: 0.9}
train: {epochs: 1, max_steps: 12, log_every: 4, eval_every: 6}
)";

std::string recipe(const std::string& name) { return dl::test::source_path("recipes/fashion_mnist/" + name); }

}  // namespace

TEST_CASE("cli: --help works for the tool and every subcommand", "[cli]") {
  Run top = dltool({"--help"});
  CHECK(top.exit_code == 0);
  CHECK_THAT(top.out, Catch::Contains("train") && Catch::Contains("validate") && Catch::Contains("bench"));
  for (const char* sub : {"train", "validate", "bench", "eval", "inspect", "resume"}) {
    Run r = dltool({sub, "--help"});
    INFO(sub << ": " << r.out);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("Usage"));
  }
  CHECK(dltool({"--version"}).exit_code == 0);
}

TEST_CASE("cli: an unknown subcommand lists the valid ones", "[cli]") {
  Run r = dltool({"trian", "recipes.yaml"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("unknown command 'trian'") && Catch::Contains("Did you mean 'train'") &&
                        Catch::Contains("Valid commands:"));
  Run none = dltool({});
  CHECK(none.exit_code == 2);
  Run flag = dltool({"train", "--no-such-flag", "x.yaml"});
  CHECK(flag.exit_code == 2);
}

TEST_CASE("cli: validate prints the layer table and the resolved config", "[cli]") {
  if (!have_data()) return;
  Run r = dltool({"validate", recipe("lenet.yaml")});
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("conv1") && Catch::Contains("[6, 28, 28]") &&
                        Catch::Contains("Total parameters: 61706"));
  Run p = dltool({"validate", "--print", recipe("mlp.yaml"), "optimizer.lr=0.05"});
  CHECK(p.exit_code == 0);
  CHECK_THAT(p.out, Catch::Contains("lr: 0.05") && Catch::Contains("batch_size: 64"));
}

TEST_CASE("cli: train writes config, metrics and TensorBoard events", "[cli]") {
  if (!have_data()) return;
  TempDir d;
  std::string cfg = d.file("tiny.yaml", kTinyMlp);
  std::string run = (d.path / "run").string();
  Run r = dltool({"train", cfg, "--run-dir", run});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  // Not a TTY: plain lines, never a carriage return.
  CHECK(r.out.find('\r') == std::string::npos);
  CHECK_THAT(r.out, Catch::Contains("step=4/12") && Catch::Contains("test accuracy"));
  CHECK(fs::exists(run + "/config.yaml"));
  std::ifstream m(run + "/metrics.jsonl");
  std::string line;
  int train_lines = 0, val_lines = 0, test_lines = 0;
  while (std::getline(m, line)) {
    CHECK(line.front() == '{');
    CHECK(line.back() == '}');
    train_lines += line.find("\"split\":\"train\"") != std::string::npos;
    val_lines += line.find("\"split\":\"val\"") != std::string::npos;
    test_lines += line.find("\"split\":\"test\"") != std::string::npos;
  }
  CHECK(train_lines == 3);  // steps 4, 8, 12
  CHECK(val_lines == 2);    // steps 6, 12
  CHECK(test_lines == 1);
  bool events = false;
  for (auto& e : fs::directory_iterator(run)) events |= e.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  CHECK(events);
  // The resolved config is itself a valid recipe.
  Run again = dltool({"validate", run + "/config.yaml"});
  CHECK(again.exit_code == 0);
}

TEST_CASE("cli: --log-format json and --quiet", "[cli]") {
  if (!have_data()) return;
  TempDir d;
  std::string cfg = d.file("tiny.yaml", kTinyMlp);
  Run j = dltool({"train", cfg, "--run-dir", (d.path / "a").string(), "--log-format", "json"});
  REQUIRE(j.exit_code == 0);
  std::istringstream is(j.out);
  std::string line;
  int n = 0;
  while (std::getline(is, line)) {
    INFO(line);
    CHECK(line.front() == '{');
    ++n;
  }
  CHECK(n >= 4);
  Run q = dltool({"train", cfg, "--run-dir", (d.path / "b").string(), "--quiet"});
  REQUIRE(q.exit_code == 0);
  CHECK(q.out.find("train epoch=") == std::string::npos);  // no per-step lines
  CHECK_THAT(q.out, Catch::Contains("test"));
}

TEST_CASE("cli: bad configs exit 2 naming file:line:col", "[cli]") {
  TempDir d;
  struct Case { const char* name; std::string yaml; std::string expect; };
  std::vector<Case> cases = {
      {"unknown_key", std::string(kTinyMlp) + "trian: {}\n", "unknown key"},
      {"typo_in_section", "model:\n  layers: [flatten, {type: linear, out_features: 10}]\noptimizer: {type: sgd, lr: 0.1, momentun: 0.9}\n", "did you mean 'momentum'"},
      {"wrong_type", "model:\n  layers: [flatten, {type: linear, out_features: ten}]\n", "expected 'num_classes' or an integer"},
      {"out_of_range", "model:\n  layers: [flatten, {type: linear, out_features: -3}]\n", ">= 1"},
      {"missing_required", "model:\n  layers: [flatten, {type: linear}]\n", "out_features"},
      {"undefined_node", "model:\n  nodes:\n    - {name: a, type: flatten}\n    - {name: b, type: linear, out_features: 10, inputs: [nope]}\n", "nope"},
      {"bad_layer_type", "model:\n  layers: [flatten, {type: linaer, out_features: 10}]\n", "did you mean 'linear'"},
      {"yaml_syntax", "model:\n  layers: [flatten, {type: linear\n", "tiny"},
  };
  for (const auto& c : cases) {
    std::string path = d.file(std::string(c.name) + ".yaml", c.yaml);
    Run r = dltool({"validate", path});
    INFO(c.name << ": " << r.out);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.out, Catch::Contains(std::string(c.name) + ".yaml:"));
    if (std::string(c.name) != "yaml_syntax") CHECK_THAT(r.out, Catch::Contains(c.expect));
    Run t = dltool({"train", path, "--run-dir", (d.path / "r").string()});
    CHECK(t.exit_code == 2);
  }
  Run o = dltool({"train", recipe("mlp.yaml"), "train.epochs=abc", "--run-dir", (d.path / "o").string()});
  CHECK(o.exit_code == 2);
  CHECK_THAT(o.out, Catch::Contains("train.epochs"));
  Run missing = dltool({"train", (d.path / "nope.yaml").string()});
  CHECK(missing.exit_code == 2);
}

TEST_CASE("cli: bad data files exit 1 naming the file", "[cli]") {
  if (!have_data()) return;
  TempDir d;
  const std::string src = "/usr/share/datasets/fashion-mnist/";
  fs::create_directories(d.path / "data");
  // Points the tiny recipe's data section at files in the temp dir.
  auto cfg_text = [&](const std::string& images, const std::string& labels) {
    std::string y = kTinyMlp;
    std::string block = "data:\n  dataset: fashion_mnist\n  val_size: 1000\n";
    y.replace(y.find(block), block.size(),
              "data:\n  dataset: fashion_mnist\n  val_size: 10\n  root: " + (d.path / "data").string() +
                  "\n  train: {images: " + images + ", labels: " + labels + "}\n  test: {images: " + images +
                  ", labels: " + labels + "}\n");
    return d.file("cfg.yaml", y);
  };
  fs::copy_file(src + "t10k-labels-idx1-ubyte.gz", d.path / "data/labels.gz");
  fs::copy_file(src + "train-labels-idx1-ubyte.gz", d.path / "data/train-labels.gz");
  // A truncated raw IDX images file: header says 10000 images, the data stops early.
  {
    std::ofstream f(d.path / "data/truncated.idx", std::ios::binary);
    const unsigned char hdr[] = {0, 0, 8, 3, 0, 0, 0x27, 0x10, 0, 0, 0, 28, 0, 0, 0, 28};
    f.write(reinterpret_cast<const char*>(hdr), sizeof hdr);
    std::string some(1000, '\0');
    f << some;
  }
  {
    std::ofstream f(d.path / "data/badmagic.idx", std::ios::binary);
    f << "this is not an idx file at all";
  }
  struct Case { std::string images, labels, expect; };
  std::vector<Case> cases = {
      {"truncated.idx", "labels.gz", "truncated.idx"},
      {"badmagic.idx", "labels.gz", "badmagic.idx"},
      {"missing.idx", "labels.gz", "missing.idx"},
  };
  for (const auto& c : cases) {
    std::string cfg = cfg_text(c.images, c.labels);
    Run r = dltool({"train", cfg, "--run-dir", (d.path / "run").string()});
    INFO(c.images << ": " << r.out);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.out, Catch::Contains(c.expect));
  }
  // Image/label count mismatch: 10000 test images with 60000 training labels.
  fs::copy_file(src + "t10k-images-idx3-ubyte.gz", d.path / "data/images.gz");
  Run r = dltool({"train", cfg_text("images.gz", "train-labels.gz"), "--run-dir", (d.path / "run").string()});
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("images.gz") || Catch::Contains("train-labels.gz"));
}

TEST_CASE("cli: a NaN loss stops the run with exit 1 naming the step", "[cli]") {
  if (!have_data()) return;
  TempDir d;
  std::string cfg = d.file("tiny.yaml", kTinyMlp);
  Run r = dltool({"train", cfg, "optimizer.lr=1e30", "--run-dir", (d.path / "run").string()});
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("loss is") && Catch::Contains("at step"));
}

TEST_CASE("cli: bench prints per-node timings and JSON", "[cli]") {
  if (!have_data()) return;
  Run r = dltool({"bench", recipe("lenet.yaml"), "--steps", "2", "--warmup", "1", "--json"});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("\"train_samples_per_s\"") && Catch::Contains("\"eval_samples_per_s\"") &&
                        Catch::Contains("\"nodes\":[") && Catch::Contains("\"name\":\"conv1\""));
  // Peak memory of the training step: LeNet at batch 64 holds activations, gradients and
  // momentum buffers (a few MiB), far from 0 and from the machine's size.
  const std::string key = "\"train_peak_memory_mib\":";
  const size_t at = r.out.find(key);
  REQUIRE(at != std::string::npos);
  const double peak = std::stod(r.out.substr(at + key.size()));
  CHECK(peak > 0.5);
  CHECK(peak < 256.0);
  Run text = dltool({"bench", recipe("lenet.yaml"), "--steps", "1", "--warmup", "1"});
  CHECK_THAT(text.out, Catch::Contains("peak memory of the training step on cpu: "));
}

TEST_CASE("cli: eval inspect and resume on a trained run", "[cli]") {
  if (!have_data()) return;
  TempDir d;
  std::string cfg = d.file("tiny.yaml", kTinyMlp);
  std::string run = (d.path / "run").string();
  REQUIRE(dltool({"train", cfg, "--run-dir", run, "--quiet"}).exit_code == 0);
  std::string last = run + "/checkpoints/last.h5";
  Run e = dltool({"eval", run, "--split", "test", "--json"});
  INFO(e.out);
  CHECK(e.exit_code == 0);
  CHECK_THAT(e.out, Catch::Contains("\"accuracy\":") && Catch::Contains("\"confusion_matrix\":[[") &&
                        Catch::Contains("\"per_class_accuracy\":["));
  Run i = dltool({"inspect", last, "--stats"});
  INFO(i.out);
  CHECK(i.exit_code == 0);
  CHECK_THAT(i.out, Catch::Contains("1.weight") && Catch::Contains("[16, 784]") && Catch::Contains("float32") &&
                        Catch::Contains("total parameters: 12730") && Catch::Contains("momentum_buffer"));
  Run diff = dltool({"inspect", last, "--diff", last});
  CHECK(diff.exit_code == 0);
  CHECK_THAT(diff.out, Catch::Contains("0 key(s) differ"));
  // A finished run resumed with more steps continues from its checkpoint.
  Run r = dltool({"resume", run, "train.max_steps=16", "--log-format", "plain"});
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("resumed from") && Catch::Contains("step=16/16"));
  // Changing the model on resume is refused, naming the key and both values.
  Run bad = dltool({"train", cfg, "model.layers[1].out_features=8", "--run-dir", run, "--resume", "auto"});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.out, Catch::Contains("model.layers[1].out_features") && Catch::Contains("checkpoint 16, now 8"));
  // Corrupt and foreign files: a clear error, exit 1.
  std::string junk = d.file("junk.h5", "definitely not hdf5");
  Run j = dltool({"inspect", junk});
  CHECK(j.exit_code == 1);
  CHECK_THAT(j.out, Catch::Contains("junk.h5") && Catch::Contains("not an HDF5 file"));
  std::string empty = d.file("empty.h5", "");
  CHECK(dltool({"eval", empty}).exit_code == 1);
  CHECK(dltool({"inspect", (d.path / "missing.h5").string()}).exit_code == 1);
}

TEST_CASE("cli: a bad DLTOOL_MAX_CPU_ISA is a usage error naming the variable", "[cli]") {
  const std::string recipe = dl::test::source_path("recipes/fashion_mnist/mlp.yaml");
  Run r = dl::test::run_process({DLTOOL_BINARY, "validate", recipe},
                                {.env = {{"DLTOOL_MAX_CPU_ISA", "avx9"}}, .merge_stderr = true, .timeout_s = 60});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("DLTOOL_MAX_CPU_ISA='avx9': expected baseline or avx2"));
  Run ok = dl::test::run_process({DLTOOL_BINARY, "validate", recipe},
                                 {.env = {{"DLTOOL_MAX_CPU_ISA", "baseline"}}, .merge_stderr = true, .timeout_s = 60});
  CHECK(ok.exit_code == 0);
}
