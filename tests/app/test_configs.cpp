// configs/: recipes parse to the right typed values, every class of mistake is reported with
// file:line:col + key path + hint, extends/overrides work, and the resolved YAML round-trips.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "configs/config.h"
#include "engine/nn/loss_registry.h"
#include "engine/optim/registry.h"
#include "engine/sched/registry.h"
#include "configs/detail.h"
#include "datasets/format.h"  // the schema tables, for the self-check
#include "datasets/idx.h"
#include "engine/graph/layer_schema.h"
#include "cli/run/trainer.h"
#include "tests/support/process.h"
#include "tests/support/tempdir.h"

using namespace dl;

namespace {

const std::string kDir = std::string(DLTOOL_SOURCE_DIR) + "/tests/app/data/configs/";

// Lines 1-3 of every inline recipe; tests append sections from line 4 on.
const std::string kModelAndData =
    "model:\n"
    "  layers: [flatten, {type: linear, out_features: 10}]\n"
    "data: {dataset: fashion_mnist, val_size: 100}\n";

Config load(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return load_config_string(yaml, "inline.yaml", overrides);
}

// Runs `f`, expects a ConfigError, and returns its diagnostics.
template <class F>
std::vector<Diagnostic> errors_of(F f) {
  try {
    f();
  } catch (const ConfigError& e) {
    REQUIRE(!e.diagnostics().empty());
    return e.diagnostics();
  }
  FAIL("expected a ConfigError");
  return {};
}

// The diagnostic for `path`; fails the test when there is none.
Diagnostic diag_for(const std::vector<Diagnostic>& diags, const std::string& path) {
  for (const auto& d : diags)
    if (d.path == path) return d;
  std::string all;
  for (const auto& d : diags) all += "\n  " + d.str();
  FAIL("no diagnostic for '" << path << "' among:" << all);
  return {};
}

// One error for `path` at `loc` whose message contains `message` and hint contains `hint`.
void check_error(const std::vector<Diagnostic>& diags, const std::string& path,
                 const std::string& loc, const std::string& message, const std::string& hint = "") {
  Diagnostic d = diag_for(diags, path);
  INFO(d.str());
  CHECK(d.loc.str() == loc);
  CHECK_THAT(d.message, Catch::Contains(message));
  if (!hint.empty()) CHECK_THAT(d.hint, Catch::Contains(hint));
}

void check_inline_error(const std::string& extra_yaml, const std::string& path,
                        const std::string& loc, const std::string& message,
                        const std::string& hint = "") {
  check_error(errors_of([&] { load(kModelAndData + extra_yaml); }), path, loc, message, hint);
}


}  // namespace

TEST_CASE("configs: the LeNet recipe parses with its values and PyTorch defaults") {
  Config c = load_config(kDir + "lenet.yaml");
  CHECK(c.name == "lenet");
  CHECK(c.source_path == kDir + "lenet.yaml");

  const ModelSpec& m = c.model;
  REQUIRE(m.nodes.size() == 12);
  CHECK(m.sequential);
  CHECK(m.nodes[0].name == "0");  // nn.Sequential names: 0.weight, ...
  CHECK(m.nodes[11].name == "fc");
  CHECK(m.output == "fc");
  CHECK(m.nodes[0].inputs == std::vector<std::string>{"input"});
  CHECK(m.nodes[1].inputs == std::vector<std::string>{"0"});
  CHECK(m.nodes[0].loc.str() == kDir + "lenet.yaml:5:7");

  const LayerSpec& conv = m.nodes[0];
  CHECK(conv.type == "conv2d");
  CHECK(conv.get_int("out_channels") == 6);
  CHECK(conv.get_pair("kernel_size") == std::array<int64_t, 2>{5, 5});
  CHECK(conv.get_pair("padding") == std::array<int64_t, 2>{2, 2});
  CHECK(conv.get_pair("stride") == std::array<int64_t, 2>{1, 1});    // default
  CHECK(conv.get_pair("dilation") == std::array<int64_t, 2>{1, 1});  // default
  CHECK(conv.get_int("groups") == 1);
  CHECK(conv.get_bool("bias"));
  CHECK(m.nodes[2].get_pair("stride") == std::array<int64_t, 2>{2, 2});  // = kernel_size
  CHECK(m.nodes[6].get_int("start_dim") == 1);
  CHECK(m.nodes[6].get_int("end_dim") == -1);
  CHECK(m.nodes[1].attrs.empty());
  CHECK_THROWS_AS(conv.get_float("groups"), std::logic_error);

  CHECK(c.data.dataset == "fashion_mnist");
  CHECK(c.data.format == "idx");
  CHECK(c.data.root == "/usr/share/datasets/fashion-mnist");
  CHECK(std::get<std::string>(c.data.splits.at("train").at("images")) == "train-images-idx3-ubyte.gz");
  CHECK(std::get<std::string>(c.data.splits.at("test").at("labels")) == "t10k-labels-idx1-ubyte.gz");
  CHECK(std::get<std::vector<std::string>>(c.data.options.at("classes")).at(9) == "Ankle boot");  // the preset's names
  CHECK(c.data.val_size == 5000);
  REQUIRE(c.data.transforms.size() == 2);
  CHECK(std::get<double>(c.data.transforms[0].attrs.at("scale")) == 0.00392156862745098);
  CHECK(std::get<std::vector<double>>(c.data.transforms[1].attrs.at("mean")) ==
        std::vector<double>{0.2860});
  CHECK(c.data.loader.batch_size == 64);
  CHECK(c.data.loader.shuffle);
  CHECK(c.data.loader.prefetch == 2);

  CHECK(c.loss.type == "cross_entropy");
  CHECK(attr_int(c.loss.attrs, "ignore_index") == -100);
  CHECK(attr_string(c.loss.attrs, "reduction") == "mean");

  CHECK(c.optimizer.type == "sgd");
  CHECK(attr_float(c.optimizer.hyper, "lr") == 0.01);
  CHECK(attr_float(c.optimizer.hyper, "momentum") == 0.9);
  CHECK(attr_float(c.optimizer.hyper, "dampening") == 0.0);
  CHECK_FALSE(attr_bool(c.optimizer.hyper, "nesterov"));
  REQUIRE(c.optimizer.param_groups.size() == 1);
  const ParamGroupSpec& g = c.optimizer.param_groups[0];
  CHECK(g.params == std::vector<std::string>{"*.bias"});
  CHECK(g.overrides == AttrMap{{"weight_decay", 0.0}});
  CHECK(attr_float(g.hyper, "lr") == 0.01);  // inherited from the optimizer
  CHECK(attr_float(g.hyper, "momentum") == 0.9);

  CHECK(c.scheduler.type == "cosine_annealing");
  CHECK(attr_int(c.scheduler.attrs, "T_max") == 0 /* auto */);
  CHECK(c.scheduler.interval == "epoch");
  CHECK(c.train.epochs == 5);
  CHECK(c.train.eval_every == TrainSpec::kEveryEpoch);
  CHECK(c.train.device == "cpu");
  REQUIRE(c.metrics.size() == 1);
  CHECK(c.metrics[0].name() == "accuracy");
  CHECK(c.checkpoint.best.metric == "val/accuracy");
  CHECK(c.checkpoint.best.mode == "max");
  CHECK(c.checkpoint.keep_last == 3);
}

TEST_CASE("configs: a minimal recipe gets every default from the schema") {
  Config c = load_config(kDir + "minimal.yaml");
  CHECK(c.name == "minimal");                                 // the file's stem
  CHECK(c.data.root == "/usr/share/datasets/fashion-mnist");  // the preset
  CHECK(std::get<std::string>(c.data.splits.at("train").at("labels")) == "train-labels-idx1-ubyte.gz");
  CHECK(c.data.augment.empty());
  CHECK(c.data.val_size == 0);
  REQUIRE(c.data.transforms.size() == 1);
  CHECK(c.data.transforms[0].type == "to_float");
  CHECK(std::get<double>(c.data.transforms[0].attrs.at("scale")) == 1.0 / 255);
  CHECK(c.data.loader == LoaderSpec{64, true, false, 2, 1, {}});
  CHECK(c.loss.type == "cross_entropy");
  CHECK(c.loss.attrs == AttrMap{{"weight", std::vector<double>{}}, {"ignore_index", int64_t{-100}},
                                {"reduction", std::string("mean")}, {"label_smoothing", 0.0}});
  CHECK(c.optimizer.type == "sgd");
  CHECK(attr_float(c.optimizer.hyper, "lr") == 1e-3);
  CHECK(attr_float(c.optimizer.hyper, "momentum") == 0.0);
  CHECK(c.optimizer.param_groups.empty());
  CHECK(c.scheduler.type == "none");
  CHECK(c.scheduler.interval == "epoch");
  CHECK(c.train == TrainSpec{10, 0, 100, TrainSpec::kEveryEpoch, 0, "cpu", 0});
  CHECK(c.metrics.empty());
  CHECK(c.checkpoint.every_steps == 0);
  CHECK(c.checkpoint.every_epoch);
  CHECK(c.checkpoint.best == BestCheckpointSpec{"", "auto"});
}

TEST_CASE("configs: the graph form and typed sections") {
  Config c = load_config(kDir + "residual.yaml");
  const ModelSpec& m = c.model;
  CHECK_FALSE(m.sequential);
  REQUIRE(m.nodes.size() == 8);
  CHECK(m.find("c1")->inputs == std::vector<std::string>{"input"});
  CHECK(m.find("r1")->inputs == std::vector<std::string>{"c1"});  // default: previous node
  CHECK(m.find("sum")->inputs == std::vector<std::string>{"c1", "c2"});
  CHECK(m.find("cat")->get_int("dim") == 1);
  CHECK(m.find("pool")->get_pair("output_size") == std::array<int64_t, 2>{1, 1});
  CHECK(m.output == "head");
  CHECK(c.optimizer.type == "adamw");
  CHECK(attr_float(c.optimizer.hyper, "weight_decay") == 1e-2);  // AdamW's own default
  CHECK(attr_floats(c.optimizer.hyper, "betas") == std::vector<double>{0.9, 0.999});
  REQUIRE(c.metrics.size() == 2);
  CHECK(c.metrics[1] == MetricSpec{"accuracy", 5});  // `top5`
  CHECK(c.metrics[1].name() == "top5");

  Config s = load(kModelAndData + "loss: smooth_l1_loss\nscheduler: {type: step, step_size: 3}\n");
  CHECK(s.loss.type == "smooth_l1_loss");
  CHECK(attr_float(s.loss.attrs, "beta") == 1.0);
  CHECK(attr_int(s.scheduler.attrs, "step_size") == 3);
  CHECK(attr_float(s.scheduler.attrs, "gamma") == 0.1);
}

TEST_CASE("configs: unknown keys and names get a location and a did-you-mean hint") {
  check_inline_error("optimiser: {lr: 0.1}\n", "optimiser", "inline.yaml:4:1", "unknown key",
                     "did you mean 'optimizer'?");
  check_inline_error("optimizer:\n  type: sgd\n  momentun: 0.9\n", "optimizer.momentun",
                     "inline.yaml:6:3", "unknown key for optimizer 'sgd'",
                     "did you mean 'momentum'?");
  check_inline_error("optimizer: {type: adamm}\n", "optimizer.type", "inline.yaml:4:19",
                     "unknown optimizer type 'adamm'", "did you mean 'adam'?");
  check_inline_error("loss: cross_entropi\n", "loss", "inline.yaml:4:7",
                     "unknown loss type 'cross_entropi'", "did you mean 'cross_entropy'?");
  check_inline_error("scheduler: {type: cosine}\n", "scheduler.type", "inline.yaml:4:19",
                     "unknown scheduler type", "did you mean 'cosine_annealing'?");
  check_inline_error("data2: {}\n", "data2", "inline.yaml:4:1", "unknown key",
                     "did you mean 'data'?");
  check_inline_error("train: {bogus_key: 1}\n", "train.bogus_key", "inline.yaml:4:9", "unknown key",
                     "valid keys: grad_scaler, epochs, max_steps");

  auto layer_errors = errors_of([] {
    load(
        "model:\n"
        "  layers:\n"
        "    - {type: conv2d, out_channels: 6, kernel_size: 3, paddin: 1}\n"
        "    - rellu\n"
        "    - {type: conv, out_channels: 6}\n"
        "data: {dataset: mnist}\n");
  });
  check_error(layer_errors, "model.layers[0].paddin", "inline.yaml:3:55",
              "unknown key for layer type 'conv2d'", "did you mean 'padding'?");
  check_error(layer_errors, "model.layers[1]", "inline.yaml:4:7", "unknown layer type 'rellu'",
              "did you mean 'relu'?");
  check_error(layer_errors, "model.layers[2].type", "inline.yaml:5:14", "unknown layer type",
              "did you mean 'conv2d'?");
}

TEST_CASE("configs: wrong types and ranges and choices name what was expected") {
  check_inline_error("train: {epochs: abc}\n", "train.epochs", "inline.yaml:4:17",
                     "expected an integer >= 1, got 'abc'");
  check_inline_error("train: {epochs: 2.5}\n", "train.epochs", "inline.yaml:4:17",
                     "expected an integer >= 1, got 2.5");
  check_inline_error("train: {epochs: \"3\"}\n", "train.epochs", "inline.yaml:4:17",
                     "got '3'");  // quoted: a string, not a number
  check_inline_error("train: {epochs: 0}\n", "train.epochs", "inline.yaml:4:17",
                     "expected an integer >= 1, got 0");
  check_inline_error("train: {eval_every: 0}\n", "train.eval_every", "inline.yaml:4:21",
                     "expected 'epoch' or an integer >= 1, got 0");
  check_inline_error("train: {device: gpu}\n", "train.device", "inline.yaml:4:17",
                     "expected 'cpu', 'cuda' or 'cuda:N', got 'gpu'");
  check_error(errors_of([] {
                load(
                    "model: {layers: [relu]}\ndata: {dataset: mnist, loader: "
                    "{shuffle: yes}}\n");
              }),
              "data.loader.shuffle", "inline.yaml:2:42",
              "expected a boolean (true or false), got 'yes'");
  check_inline_error("optimizer: {type: adam, betas: [0.9]}\n", "optimizer.betas",
                     "inline.yaml:4:32",
                     "expected a list of 2 numbers (each in [0, 1)), got [0.9]");
  check_inline_error("loss: {reduction: avg}\n", "loss.reduction", "inline.yaml:4:19",
                     "expected one of 'none', 'mean', 'sum', got 'avg'");
  check_inline_error("scheduler: {type: step}\n", "scheduler.step_size", "inline.yaml:4:12",
                     "required key is missing for scheduler 'step'");
  check_inline_error("scheduler: {type: multi_step, milestones: [5, 3]}\n", "scheduler.milestones",
                     "inline.yaml:4:43", "strictly increasing");
  check_inline_error("optimizer: {nesterov: true}\n", "optimizer.nesterov", "inline.yaml:4:23",
                     "Nesterov momentum requires a momentum > 0");

  auto layer_errors = errors_of([] {
    load(
        "model:\n"
        "  layers:\n"
        "    - {type: conv2d, out_channels: 6, kernel_size: -3}\n"
        "    - {type: dropout, p: 1.0}\n"
        "    - {type: gelu, approximate: tan}\n"
        "    - {type: linear, bias: false}\n"
        "    - {type: conv2d, out_channels: 6, kernel_size: 3, groups: 4}\n"
        "data: {dataset: mnist}\n");
  });
  check_error(layer_errors, "model.layers[0].kernel_size", "inline.yaml:3:52",
              "expected an integer >= 1 or a list of 2 such integers, got -3");
  check_error(layer_errors, "model.layers[1].p", "inline.yaml:4:26",
              "expected a number in [0, 1), got 1.0");
  check_error(layer_errors, "model.layers[2].approximate", "inline.yaml:5:33",
              "expected one of 'none', 'tanh'", "did you mean 'tanh'?");
  check_error(layer_errors, "model.layers[3].out_features", "inline.yaml:6:7",
              "required key is missing for layer type 'linear'");
  check_error(layer_errors, "model.layers[4]", "inline.yaml:7:7",
              "out_channels (6) must be divisible by groups (4)");
}

TEST_CASE("configs: graph mistakes are reported with the node and its inputs") {
  auto diags = errors_of([] {
    load(
        "model:\n"
        "  nodes:\n"
        "    - {name: c1, type: conv2d, out_channels: 4, kernel_size: 3}\n"
        "    - {name: c1, type: relu}\n"
        "    - {name: s, type: add, inputs: [c1, c3]}\n"
        "    - {name: t, type: add, inputs: [c1, u]}\n"
        "    - {name: u, type: add, inputs: c1}\n"
        "    - {type: relu}\n"
        "  output: uu\n"
        "data: {dataset: mnist}\n");
  });
  check_error(diags, "model.nodes[1].name", "inline.yaml:4:14",
              "duplicate node name 'c1' (first used at line 3)");
  check_error(diags, "model.nodes[2].inputs[1]", "inline.yaml:5:41", "undefined node 'c3'",
              "did you mean 'c1'?");
  check_error(diags, "model.nodes[3].inputs[1]", "inline.yaml:6:41",
              "node 'u' is defined later (line 7)");
  check_error(diags, "model.nodes[4].inputs", "inline.yaml:7:36",
              "add takes at least 2 inputs, got 1");
  check_error(diags, "model.nodes[5].name", "inline.yaml:8:7", "required key is missing");
  check_error(diags, "model.output", "inline.yaml:9:11", "undefined node 'uu'",
              "did you mean 'u'?");

  check_error(errors_of([] {
                load(
                    "model:\n  layers: [relu]\n  nodes: [{name: a, type: relu}]\n"
                    "data: {dataset: mnist}\n");
              }),
              "model.nodes", "inline.yaml:3:3", "either layers: (a sequence) or nodes:");
  check_error(errors_of([] { load("model: {output: x}\ndata: {dataset: mnist}\n"); }), "model",
              "inline.yaml:1:8", "needs layers:");
  check_error(errors_of([] { load("data: {dataset: mnist}\n"); }), "model", "inline.yaml:1:1",
              "required section is missing");
  check_error(errors_of([] {
                load("model:\n  layers: [{type: relu, inputs: [input]}]\ndata: {dataset: mnist}\n");
              }),
              "model.layers[0].inputs", "inline.yaml:2:25", "only allowed in model.nodes");
}

TEST_CASE("configs: data presets and metric references and YAML errors") {
  check_error(errors_of([] { load("model: {layers: [relu]}\ndata: {dataset: fashon_mnist}\n"); }),
              "data.dataset", "inline.yaml:2:17", "has no preset, so data.root, data.train.images",
              "did you mean 'fashion_mnist'?");
  check_inline_error("metrics: [accuracy]\ncheckpoint: {best: {metric: val/acc}}\n",
                     "checkpoint.best.metric", "inline.yaml:5:29", "metric 'acc' is not computed",
                     "did you mean 'accuracy'?");
  check_inline_error("metrics: [accuracy, top1]\n", "metrics[1]", "inline.yaml:4:21",
                     "metric 'accuracy' is listed twice");
  check_error(errors_of([] { load("model: {layers: [linear]}\ndata: {dataset: mnist}\n"); }),
              "model.layers[0].out_features", "inline.yaml:1:18",
              "required key is missing");  // located at the bare `linear`
  check_inline_error("checkpoint: {best: {metric: valid/loss}}\n", "checkpoint.best.metric",
                     "inline.yaml:4:29", "split one of train, val, test", "did you mean 'val'?");
  check_error(errors_of([] {
                load(
                    "model: {layers: [relu]}\ndata: {dataset: mnist}\n"
                    "scheduler: reduce_on_plateau\n");
              }),
              "scheduler.metric", "inline.yaml:3:12",
              "'val/loss' needs a validation split, but the data has none");

  check_error(errors_of([] { load("model:\n  layers: [relu\ndata: {dataset: mnist}\n"); }), "",
              "inline.yaml:3:5", "YAML syntax error");
  check_error(errors_of([] { load("model:\n  layers: [relu]\n  layers: [tanh]\n"); }),
              "model.layers", "inline.yaml:3:3", "duplicate key (first written at line 2)");
  check_error(errors_of([] { load("- a\n- b\n"); }), "", "inline.yaml:1:1",
              "expected a map of sections");
  auto missing = errors_of([] { load_config(kDir + "no_such_file.yaml"); });
  CHECK(missing[0].loc.str() == kDir + "no_such_file.yaml");
  CHECK_THAT(missing[0].message, Catch::Contains("cannot read config file"));
}

TEST_CASE("configs: all errors are collected in file order in one ConfigError") {
  const std::string yaml =
      "model:\n"
      "  layers: [{type: linear, out_features: 0}]\n"  // line 2
      "data: {dataset: mnist}\n"
      "train: {epochs: -1, seeed: 3}\n"  // line 4
      "optimizer: {lr: fast}\n";         // line 5
  try {
    load(yaml);
    FAIL("expected a ConfigError");
  } catch (const std::runtime_error& e) {  // ConfigError is a std::runtime_error
    const auto* ce = dynamic_cast<const ConfigError*>(&e);
    REQUIRE(ce != nullptr);
    const auto& d = ce->diagnostics();
    REQUIRE(d.size() == 4);
    CHECK(d[0].path == "model.layers[0].out_features");
    CHECK(d[1].path == "train.epochs");
    CHECK(d[2].path == "train.seeed");
    CHECK(d[3].path == "optimizer.lr");
    std::string what = e.what();
    CHECK(std::count(what.begin(), what.end(), '\n') == 3);  // one line per diagnostic
    CHECK_THAT(what, Catch::StartsWith("inline.yaml:2:41: error: model.layers[0].out_features: "
                                       "expected 'num_classes' or an integer >= 1, got 0"));
    CHECK_THAT(what, Catch::Contains("inline.yaml:4:21: error: train.seeed: unknown key "
                                     "(did you mean 'seed'?)"));
  }
}

TEST_CASE("configs: extends merges deeply and replaces lists and detects cycles") {
  Config c = load_config(kDir + "child.yaml");
  CHECK(c.name == "child");               // never inherited
  CHECK(c.data.loader.batch_size == 32);  // child wins
  CHECK(c.data.loader.shuffle);           // merged from the base
  CHECK(attr_float(c.optimizer.hyper, "lr") == 0.05);
  CHECK(attr_float(c.optimizer.hyper, "momentum") == 0.9);
  CHECK(c.train.epochs == 3);
  CHECK(c.train.seed == 7);
  CHECK(c.metrics.size() == 2);  // lists are replaced, not appended
  CHECK(c.model.nodes.size() == 2);

  Config g = load_config(kDir + "grandchild.yaml");
  CHECK(g.name == "grandchild");
  CHECK(g.train.seed == 11);
  CHECK(g.train.epochs == 3);
  CHECK(attr_float(g.optimizer.hyper, "lr") == 0.05);

  Config adam = load_config(kDir + "child_adam.yaml");  // type change: no inherited momentum
  CHECK(adam.optimizer.type == "adam");
  CHECK(attr_float(adam.optimizer.hyper, "lr") == 1e-3);

  // An error in a base file names the base file and its line.
  check_error(errors_of([] { load_config(kDir + "bad_child.yaml"); }),
              "model.layers[0].out_features", kDir + "bad_base.yaml:4:36",
              "expected 'num_classes' or an integer >= 1, got 0");
  check_error(errors_of([] { load_config(kDir + "cycle_a.yaml"); }), "extends",
              kDir + "cycle_b.yaml:1:10", "cycle: cycle_a.yaml -> cycle_b.yaml -> cycle_a.yaml");
  check_error(errors_of([] { load_config(kDir + "missing_base.yaml"); }), "extends",
              kDir + "missing_base.yaml:1:10", "cannot read base config");

  // Relative to the virtual file's directory for load_config_string.
  Config s = load_config_string("extends: base.yaml\ntrain: {epochs: 1}\n", kDir + "virtual.yaml");
  CHECK(s.name == "virtual");
  CHECK(s.train.epochs == 1);
  CHECK(s.train.seed == 7);
}

TEST_CASE("configs: key=value overrides are typed and validated like the file") {
  Config c =
      load_config(kDir + "lenet.yaml",
                  {"optimizer.lr=0.05", "train.epochs=3", "data.loader.batch_size=32",
                   "model.layers[0].out_channels=8", "model.layers[1].type=gelu", "scheduler=step",
                   "scheduler.step_size=2", "train.device=cuda:1", "data.transforms=[]",
                   "metrics=[accuracy, top5]", "checkpoint.best.metric=val/top5"});
  CHECK(attr_float(c.optimizer.hyper, "lr") == 0.05);
  CHECK(c.train.epochs == 3);
  CHECK(c.data.loader.batch_size == 32);
  CHECK(c.model.nodes[0].get_int("out_channels") == 8);
  CHECK(c.model.nodes[1].type == "gelu");
  CHECK(c.model.nodes[1].get_string("approximate") == "none");
  CHECK(c.scheduler.type == "step");
  CHECK(attr_int(c.scheduler.attrs, "step_size") == 2);
  CHECK(c.train.device == "cuda:1");
  CHECK(c.data.transforms.empty());
  CHECK(c.checkpoint.best.metric == "val/top5");

  auto diags = errors_of([] {
    load_config(kDir + "lenet.yaml",
                {"train.epochs=abc", "optimizer.momentun=0.9", "model.layers[20].out_channels=8",
                 "no_equals_sign", "data.loader=[1", "extends=x.yaml"});
  });
  REQUIRE(diags.size() == 6);
  check_error(diags, "train.epochs", "<override 1: train.epochs=abc>",
              "expected an integer >= 1, got 'abc'");
  check_error(diags, "optimizer.momentun", "<override 2: optimizer.momentun=0.9>",
              "unknown key for optimizer 'sgd'", "did you mean 'momentum'?");
  check_error(diags, "model.layers[20].out_channels",
              "<override 3: model.layers[20].out_channels=8>",
              "index 20 is out of range ('model.layers' has 12 items)");
  check_error(diags, "", "<override 4: no_equals_sign>", "expected key=value");
  check_error(diags, "data.loader", "<override 5: data.loader=[1>", "YAML syntax error");
  check_error(diags, "extends", "<override 6: extends=x.yaml>", "cannot be overridden");
  CHECK(diags[0].str() ==
        "<override 1: train.epochs=abc>: error: train.epochs: expected an "
        "integer >= 1, got 'abc'");
}

TEST_CASE("configs: the resolved YAML reloads to an identical Config") {
  std::vector<Config> configs = {
      load_config(kDir + "lenet.yaml"), load_config(kDir + "minimal.yaml"),
      load_config(kDir + "residual.yaml"), load_config(kDir + "grandchild.yaml"),
      load_config(kDir + "lenet.yaml", {"scheduler={type: reduce_on_plateau, metric: val/accuracy}",
                                        "optimizer={type: adam, amsgrad: true}",
                                        "loss={type: smooth_l1_loss, beta: 0.25}",
                                        "train.eval_every=250", "data.val_size=10"})};
  for (const Config& c : configs) {
    INFO(c.resolved_yaml);
    CHECK(c.resolved_yaml == to_yaml(c));
    CHECK_THAT(c.resolved_yaml, !Catch::Contains("extends"));
    Config again = load_config_string(c.resolved_yaml, "resolved.yaml");
    CHECK(again == c);
    CHECK(again.resolved_yaml == c.resolved_yaml);
  }
  // Through a file, as written to runs/<name>/config.yaml.
  auto path = std::filesystem::temp_directory_path() / "dltool_test_resolved_config.yaml";
  std::ofstream(path) << configs[0].resolved_yaml;
  CHECK(load_config(path.string()) == configs[0]);
  std::filesystem::remove(path);

  const std::string& y = configs[0].resolved_yaml;  // every default spelled out
  CHECK_THAT(y, Catch::Contains("stride: [1, 1]"));
  CHECK_THAT(y, Catch::Contains("T_max: auto"));
  CHECK_THAT(y, Catch::Contains("eval_every: epoch"));
  CHECK_THAT(y, Catch::Contains("dampening: 0.0"));
}

TEST_CASE("configs: every schema default satisfies its own schema") {
  auto check_all = [](const std::string& where, const std::vector<AttrSchema>& attrs) {
    std::set<std::string> names;
    for (const auto& a : attrs) {
      INFO(where << "." << a.name);
      CHECK(names.insert(a.name).second);  // unique within its table
      CHECK_FALSE(a.doc.empty());
      CHECK_FALSE((a.required && a.default_value));
      if (!a.default_value) continue;
      AttrValue v = *a.default_value;
      REQUIRE(coerce_attr(a, v));
      CHECK(v == *a.default_value);  // already of the right kind
      CHECK(check_attr(a, v) == "");
    }
  };
  for (const auto& s : layer_schemas()) {
    check_all("layer " + s.type, s.attrs);
    CHECK_FALSE(s.doc.empty());
  }
  using namespace dl::config_detail;
  // Field tables: check the defaults, and that each binding's member holds the kind's
  // AttrValue alternative (set/get round trip; std::get would throw otherwise).
  auto check_fields = [&](const std::string& where, const auto& fields, auto spec) {
    check_all(where, attrs_of(fields));
    for (const auto& f : fields) {
      if (!f.attr.default_value) continue;
      INFO(where << "." << f.attr.name);
      AttrValue v = *f.attr.default_value;
      f.set(spec, v);
      CHECK(f.get(spec) == v);
    }
  };
  check_fields("top", top_fields(), Config{});
  check_fields("data", data_fields(), DataSpec{});
  for (const auto& f : data::format_defs()) {
    check_all("format " + f.name, f.attrs);
    check_all("format " + f.name + " splits", f.split_attrs);
  }
  for (const auto& t : sampler_types()) check_all("sampler " + t.type, t.attrs);
  check_fields("data.loader", loader_fields(), LoaderSpec{});
  check_fields("train", train_fields(), TrainSpec{});
  check_fields("checkpoint", checkpoint_fields(), CheckpointSpec{});
  check_fields("checkpoint.best", best_fields(), BestCheckpointSpec{});
  for (const auto& t : loss_types()) check_all("loss " + t.type, t.attrs);
  for (const auto& t : optimizer_types()) check_all("optimizer " + t.type, t.attrs);
  for (const auto& t : scheduler_types()) check_all("scheduler " + t.type, t.attrs);
  for (const auto& t : metric_types()) check_fields("metric " + t.type, t.fields, MetricSpec{});
  for (const auto& t : transform_types()) check_all("transform " + t.type, t.attrs);

  // And every registered type loads end to end with only its required keys (schedulers: their
  // registration's example values; sequential/chained with two children).
  std::vector<std::string> extras = {"metrics: [top3]"};
  for (const auto& d : optim::optimizer_defs()) extras.push_back("optimizer: " + d.name);
  for (const auto& d : nn::loss_defs())
    if (d.class_target != nn::ClassTarget::none) extras.push_back("loss: " + d.name);
  for (const auto& d : sched::scheduler_defs()) {
    std::string y = "scheduler: {type: " + d.name;
    for (const auto& [k, v] : d.example) y += ", " + k + ": " + format_attr(v);
    if (d.takes_children) y += ", schedulers: [{type: linear}, {type: exponential, gamma: 0.9}]";
    extras.push_back(y + "}");
  }
  for (const std::string& extra : extras) {
    INFO(extra);
    CHECK_NOTHROW(load(kModelAndData + extra + "\n"));
  }
  CHECK_NOTHROW(
      load(kModelAndData, {"data.transforms=[{type: normalize, mean: [0.5], std: [1]}]"}));
}

TEST_CASE("configs: layer schema registry serves specs built in code") {
  LayerSpec pool{"p", "max_pool2d", {"input"}, {{"kernel_size", int64_t{3}}}, {}};
  CHECK(resolve_layer_attrs(pool).empty());
  CHECK(pool.get_pair("kernel_size") == std::array<int64_t, 2>{3, 3});
  CHECK(pool.get_pair("stride") == std::array<int64_t, 2>{3, 3});
  CHECK_FALSE(pool.get_bool("ceil_mode"));

  LayerSpec bad{"l", "linear", {"input", "x"}, {{"out_features", 0.5}, {"bogus", true}}, {}};
  auto problems = resolve_layer_attrs(bad);
  REQUIRE(problems.size() == 3);
  CHECK_THAT(problems[0], Catch::Contains("bogus"));
  CHECK_THAT(problems[1], Catch::Contains("out_features: expected 'num_classes' or an integer >= 1, got 0.5"));
  CHECK_THAT(problems[2], Catch::Contains("inputs: linear takes exactly 1 input, got 2"));

  // A new layer type is one registry entry, and the YAML side knows it at once.
  register_layer_schema({"test_scale",
                         "multiply by factor",
                         {AttrSchema::floating("factor", 2.0).describe("the factor")}});
  CHECK_THROWS_AS(register_layer_schema({"test_scale", "again", {}}), std::invalid_argument);
  Config c = load("model: {layers: [test_scale]}\ndata: {dataset: mnist}\n");
  CHECK(c.model.nodes[0].get_float("factor") == 2.0);
  CHECK(unregister_layer_schema("test_scale"));  // keep the registry as the docs describe it
  CHECK_FALSE(unregister_layer_schema("test_scale"));
}

TEST_CASE("configs: did_you_mean") {
  std::vector<std::string> keys = {"batch_size", "shuffle", "momentum", "lr", "adam", "adamw"};
  CHECK(did_you_mean("momentun", keys) == "momentum");
  CHECK(did_you_mean("shufle", keys) == "shuffle");
  CHECK(did_you_mean("mometnum", keys) == "momentum");  // adjacent swap counts once
  CHECK(did_you_mean("Adam", keys) == "adam");
  CHECK(did_you_mean("batch", keys) == "batch_size");  // a prefix
  CHECK(did_you_mean("p", keys) == "");                // too short to be evidence
  CHECK(did_you_mean("completely_else", keys) == "");
}

TEST_CASE("configs: configs/README.md reference matches the schema tables") {
  // Regenerate with: DLTOOL_UPDATE_DOCS=1 app_tests "configs: configs/README.md*"
  const std::string path = std::string(DLTOOL_SOURCE_DIR) + "/configs/README.md";
  const std::string begin = "<!-- BEGIN GENERATED REFERENCE (config_reference_markdown) -->\n";
  const std::string end = "<!-- END GENERATED REFERENCE -->";
  std::string text = dl::test::read_file(path);
  auto b = text.find(begin), e = text.find(end);
  REQUIRE(b != std::string::npos);
  REQUIRE(e != std::string::npos);
  b += begin.size();
  const std::string generated = config_reference_markdown();
  if (std::getenv("DLTOOL_UPDATE_DOCS")) {
    text.replace(b, e - b, generated);
    e = b + generated.size();
    std::ofstream(path) << text;
  }
  CHECK(text.substr(b, e - b) == generated);
}

// ---- Hardening (issue 9): bounded YAML, integer ranges, run names, empty epochs -------------

namespace {

// A "billion laughs" text: `levels` anchors, each a list of `width` aliases of the previous;
// one key per level, or (flow) one flow list holding every level.
std::string laughs(int levels, int width, bool flow = false) {
  std::string s = flow ? "[&l0 [x]" : "l0: &l0 [x]\n";
  for (int i = 1; i < levels; ++i) {
    s += (flow ? ", &l" : "l" + std::to_string(i) + ": &l") + std::to_string(i) + " [";
    for (int k = 0; k < width; ++k) s += (k ? ", *l" : "*l") + std::to_string(i - 1);
    s += flow ? "]" : "]\n";
  }
  return flow ? s + "]" : s;
}

std::string nested(const std::string& open, const std::string& close, int depth) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += open;
  s += "x";
  for (int i = 0; i < depth; ++i) s += close;
  return s;
}

}  // namespace

TEST_CASE("configs: recursive aliases, alias bombs and deep nesting are config errors",
          "[configs][hardening]") {
  // `a: &r [*r]` made a cyclic yaml-cpp graph whose conversion overflowed the stack.
  check_error(errors_of([] { load("a: &r [*r]\n"); }), "a[0]", "inline.yaml:1:8",
              "alias '*r' (anchor at line 1:4) is inside the node it names");
  check_error(errors_of([] { load("a: &r {b: [1, {c: *r}]}\n"); }), "a.b[1].c", "inline.yaml:1:19",
              "a recursive alias");
  // 9 levels of 9 aliases would expand to 9^8 nodes: stopped at the 100000th.
  auto bomb = errors_of([] { load(laughs(9, 9)); });
  REQUIRE(bomb.size() == 1);
  CHECK_THAT(bomb[0].message, Catch::Contains("expands to more than 100000 YAML nodes"));
  CHECK_THAT(bomb[0].hint, Catch::Contains("billion laughs"));
  // Brackets, flow maps and block lists 100000 deep stop at level 65, before yaml-cpp's
  // recursive parser gets anywhere near the end of the stack.
  for (const std::string& deep :
       {"a: " + nested("[", "]", 100000), "a: " + nested("{a: ", "}", 100000),
        nested("- ", "", 100000)}) {
    auto d = errors_of([&] { load(deep); });
    REQUIRE(d.size() == 1);
    CHECK_THAT(d[0].message, Catch::Contains("nested deeper than 64 levels"));
    CHECK(d[0].loc.line == 1);
  }
  // 64 levels are fine (a: is level 1): only the unknown key is reported.
  auto at_limit = errors_of([] { load(kModelAndData + "x: " + nested("[", "]", 63)); });
  CHECK_THAT(at_limit[0].message, Catch::Contains("unknown key"));
  // An alias is checked where it is used: 30 levels + an alias of 40 levels > 64.
  auto via_alias = errors_of([] {
    load("a: &a " + nested("[", "]", 40) + "\nb: " + std::string(30, '[') + "*a" +
         std::string(30, ']') + "\n");
  });
  CHECK(via_alias[0].loc.str() == "inline.yaml:2:34");
  CHECK_THAT(via_alias[0].message,
             Catch::Contains("alias '*a' (anchor at line 1:4) nests lists and maps deeper than 64"));
  // Aliases themselves keep working: a layer written once and used twice.
  Config c = load(
      "model: {layers: [flatten, &fc {type: linear, out_features: 10}, relu, *fc]}\n"
      "data: {dataset: mnist}\n");
  REQUIRE(c.model.nodes.size() == 4);
  CHECK(c.model.nodes[3].type == "linear");
  CHECK(std::get<int64_t>(c.model.nodes[3].attrs.at("out_features")) == 10);
}

TEST_CASE("configs: overrides and extends: obey the same YAML limits", "[configs][hardening]") {
  auto bomb = errors_of([] { load(kModelAndData, {"metrics=" + laughs(9, 9, /*flow=*/true)}); });
  CHECK(bomb[0].path == "metrics");
  CHECK_THAT(bomb[0].message, Catch::Contains("expands to more than 100000 YAML nodes"));
  auto deep = errors_of([] { load(kModelAndData, {"metrics=" + nested("[", "]", 100000)}); });
  CHECK(deep[0].path == "metrics");
  CHECK_THAT(deep[0].message, Catch::Contains("nested deeper than 64 levels"));
  CHECK(deep[0].loc.file.size() < 120);  // the 200 kB override is not copied into every label
  std::string key = "train";
  for (int i = 0; i < 50000; ++i) key += ".a";
  auto path = errors_of([&] { load(kModelAndData, {key + "=1"}); });
  CHECK_THAT(path[0].message, Catch::Contains("the key path nests deeper than 64 levels"));

  // A base with an alias bomb is refused naming the base file.
  test::TempDir dir;
  dir.file("bomb.yaml", laughs(9, 9));
  auto in_base = errors_of([&] { load_config(dir.file("r.yaml", "extends: bomb.yaml\n")); });
  CHECK(in_base[0].loc.file == dir.file("bomb.yaml"));
  CHECK_THAT(in_base[0].message, Catch::Contains("more than 100000 YAML nodes"));
  // Each file extends the previous one 9 times: 9^k reads unless the number of reads is bounded.
  dir.file("e0.yaml", kModelAndData);
  for (int i = 1; i <= 6; ++i) {
    std::string list;
    for (int k = 0; k < 9; ++k) list += (k ? ", e" : "e") + std::to_string(i - 1) + ".yaml";
    dir.file("e" + std::to_string(i) + ".yaml", "extends: [" + list + "]\n");
  }
  auto fan = errors_of([&] { load_config(dir.file("e6.yaml")); });
  CHECK(fan[0].path == "extends");
  CHECK_THAT(fan[0].message, Catch::Contains("more than 64 base files"));
  CHECK_NOTHROW(load_config(dir.file("e1.yaml")));  // 9 reads of one base are fine
}

TEST_CASE("configs: integers outside what the field can hold are errors at their location",
          "[configs][hardening]") {
  // train.threads: 100000 crashed in libgomp, the int64 maximum narrowed to 1 thread.
  for (const char* v : {"257", "100000", "9223372036854775807", "9223372036854775808"})
    check_inline_error(std::string("train: {threads: ") + v + "}\n", "train.threads",
                       "inline.yaml:4:18", "expected an integer in [0, 256], got " + std::string(v));
  CHECK(load(kModelAndData + "train: {threads: 256}\n").train.threads == 256);
  // The engine's setter holds the same bound for callers that bypass the config (it narrowed
  // to int: the int64 maximum became -1, i.e. 1 thread).
  CHECK_THROWS_AS(train::set_num_threads(TrainSpec::kMaxThreads + 1), std::invalid_argument);
  CHECK_THROWS_AS(train::set_num_threads(std::numeric_limits<int64_t>::max()), std::invalid_argument);
  // top_k is an int where it is used: the int's range is part of its schema.
  check_inline_error("metrics: [{type: accuracy, top_k: 4294967297}]\n", "metrics[0].top_k",
                     "inline.yaml:4:35", "expected an integer in [1, 2147483647], got 4294967297");
  CHECK(load(kModelAndData + "metrics: [top2147483647]\n").metrics[0].top_k == 2147483647);
  CHECK_THROWS_AS(load(kModelAndData + "metrics: [top2147483648]\n"), ConfigError);
  // Every integer key of the plain sections refuses a value beyond int64 (never wraps).
  using namespace config_detail;
  auto each = [&](const std::string& section, const std::vector<AttrSchema>& attrs) {
    for (const AttrSchema& a : attrs) {
      if (a.kind != AttrKind::Int) continue;
      const std::string key = section + "." + a.name;
      INFO(key);
      auto d = errors_of([&] { load(kModelAndData, {key + "=99999999999999999999"}); });
      CHECK(d[0].path == key);
      CHECK_THAT(d[0].message, Catch::Contains("got 99999999999999999999"));
    }
  };
  each("train", attrs_of(train_fields()));
  each("checkpoint", attrs_of(checkpoint_fields()));
  each("data.loader", attrs_of(loader_fields()));
  each("data", attrs_of(data_fields()));
}

TEST_CASE("configs: a run name must be one directory under runs/", "[configs][hardening]") {
  for (const char* name : {"\"..\"", "\".\"", "\"\"", "a/b", "\"a\\0b\"", "\"a\\nb\""}) {
    INFO(name);
    check_error(errors_of([&] { load(std::string("name: ") + name + "\n" + kModelAndData); }), "name",
                "inline.yaml:1:7", "expected a run name (a directory under runs/");
  }
  auto nul = errors_of([] { load("name: \"a\\0b\"\n" + kModelAndData); });
  CHECK_THAT(nul[0].message, Catch::Contains("got 'a\\x00b'"));
  // Control characters in any key or value are escaped where errors are printed.
  auto esc = errors_of([] { load(kModelAndData + "\"k\\e[31m\": 1\n"); });
  CHECK_THAT(esc[0].str(), Catch::StartsWith("inline.yaml:4:1: error: k\\x1b[31m: unknown key"));
  // The default, the file's stem, is checked too: "..yaml" has the stem ".".
  check_error(errors_of([] { load_config_string(kModelAndData, "..yaml"); }), "name", "..yaml:1:1",
              "the run name defaults to the file's stem '.'", "set name:");
  CHECK(load("name: my.run-1\n" + kModelAndData).name == "my.run-1");
}

TEST_CASE("configs: the real binary refuses what the config cannot run (exit codes)",
          "[configs][hardening]") {
  // 3 training samples of 4x4 pixels, 2 test samples, and an empty test file.
  test::TempDir dir;
  auto idx = [&](const std::string& stem, int64_t n) {
    std::vector<uint8_t> img(static_cast<size_t>(n * 16) + 1, 7), lab(static_cast<size_t>(n) + 1);
    for (int64_t i = 0; i < n; ++i) lab[static_cast<size_t>(i)] = static_cast<uint8_t>(i % 2);
    data::write_idx_u8(dir.file(stem + "-images"), {n, 4, 4}, img.data(), false);
    data::write_idx_u8(dir.file(stem + "-labels"), {n}, lab.data(), false);
  };
  idx("train", 3);
  idx("test", 2);
  idx("empty", 0);
  const std::string config = dir.file("tiny.yaml", R"(model: {layers: [flatten, {type: linear, out_features: 2}]}
data:
  dataset: tiny
  root: )" + dir.path.string() + R"(
  train: {images: train-images, labels: train-labels}
  test: {images: test-images, labels: test-labels}
  loader: {batch_size: 4, drop_last: true}
train: {epochs: 1}
)");
  auto dltool = [&](std::vector<std::string> args) {
    args.insert(args.begin(), DLTOOL_BINARY);
    return test::run_process(args, {.cwd = dir.path.string(), .merge_stderr = true, .timeout_s = 120});
  };
  // drop_last with fewer samples than a batch ran 0 steps and exited 0.
  test::ProcessResult r = dltool({"train", config, "--run-dir", dir.file("run")});
  INFO(r.out);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains(config + ": error: data.loader: the train split has 3 samples, "
                                             "fewer than batch_size 4"));
  CHECK_THAT(r.out, Catch::Contains("lower data.loader.batch_size to at most 3, or set "
                                    "data.loader.drop_last: false"));
  // An empty test split is a data problem naming the file.
  r = dltool({"train", config, "data.loader.drop_last=false", "data.test.images=empty-images",
              "data.test.labels=empty-labels", "--run-dir", dir.file("run")});
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("empty-images"));
  // name: ".." made the run directory the current directory.
  r = dltool({"train", config, "name=..", "data.loader.drop_last=false"});
  INFO(r.out);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("error: name: expected a run name"));
  CHECK(!std::filesystem::exists(dir.path / "config.yaml"));
  CHECK(!std::filesystem::exists(dir.path / "checkpoints"));
  // train.threads: 100000 segfaulted in libgomp.
  r = dltool({"train", config, "train.threads=100000", "data.loader.drop_last=false"});
  INFO(r.out);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("train.threads: expected an integer in [0, 256], got 100000"));
  // A pooling window of 2^63-1 over a 4x4 input is empty, not 1x1 (an overflow in the
  // output-size rounding).
  r = dltool({"validate", config, "model.layers=[{type: max_pool2d, kernel_size: 9223372036854775807}]"});
  INFO(r.out);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out, Catch::Contains("would be empty"));
  // And a batch that fits trains (2 batches per epoch). epochs x batches saturates at the int64
  // maximum: it wrapped to a negative total and the run "finished" after 0 steps.
  r = dltool({"train", config, "data.loader.batch_size=2", "data.loader.drop_last=false",
              "train.epochs=9223372036854775807", "train.max_steps=3", "--run-dir", dir.file("run")});
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("done: 3 steps"));
}

TEST_CASE("configs: registry-backed sections report bad values at file:line:col", "[configs][registry]") {
  // kModelAndData is 3 lines; the extra YAML starts on line 4.
  check_inline_error("optimizer: {type: rmsprob}\n", "optimizer.type", "inline.yaml:4:19",
                     "unknown optimizer type 'rmsprob'", "did you mean 'rmsprop'?");
  check_inline_error("scheduler: {type: lambda, lr_lambda: \"0.95 ** epcoh\"}\n", "scheduler.lr_lambda",
                     "inline.yaml:4:38", "expected an expression", "unknown name 'epcoh' at column 9");
  check_inline_error("scheduler: {type: multiplicative, lr_lambda: \"0.9 * (epoch\"}\n", "scheduler.lr_lambda",
                     "inline.yaml:4:46", "expected an expression", "column");
  check_inline_error("scheduler: {type: multi_step, milestones: [5, 3]}\n", "scheduler.milestones",
                     "inline.yaml:4:43", "strictly increasing");
  check_inline_error("scheduler: {type: sequential, milestones: [2], schedulers: [{type: linear}, {type: stepp}]}\n",
                     "scheduler.schedulers[1].type", "inline.yaml:4:84", "unknown scheduler type 'stepp'");
  check_inline_error("scheduler: {type: sequential, milestones: [2, 4], schedulers: [{type: linear}, {type: constant}]}\n",
                     "scheduler.milestones", "inline.yaml:4:43", "needs one fewer milestone than schedulers");
  check_inline_error("loss: {type: cross_entropy, reduction: none}\n", "loss.reduction", "inline.yaml:4:40",
                     "training needs one number");
  check_inline_error("optimizer: {type: adam, betas: [0.9, 1.5]}\n", "optimizer.betas", "inline.yaml:4:32",
                     "expected");
  check_inline_error("optimizer: {type: sgd, lr: 0.1, param_groups: [{params: '*.bias', nesterov: true}]}\n",
                     "optimizer.param_groups[0].nesterov", "inline.yaml:4:77", "Nesterov momentum requires");
  check_inline_error("scheduler: {type: reduce_on_plateau, metric: train/loss}\n", "scheduler.metric",
                     "inline.yaml:4:46", "val/loss or val/accuracy");
}

TEST_CASE("configs: bytes that are not UTF-8 are refused at their line and column", "[configs][fuzz]") {
  // Found by fuzz_config: yaml-cpp read "*.\xff" into a string and its emitter wrote something
  // else back, so the resolved YAML no longer loaded to the same config.
  check_error(errors_of([] { load(kModelAndData + "optimizer: {type: sgd, lr: 0.1, param_groups: "
                                                  "[{params: [\"*.\xff" "bias\"], lr: 0.2}]}\n"); }),
              "", "inline.yaml:4:61", "byte 0xff is not valid UTF-8 text", "save the file as UTF-8");
  // Truncated, overlong and surrogate sequences too; well-formed multi-byte text is fine.
  for (const std::string bad : {"\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"})
    check_error(errors_of([&] { load(kModelAndData + "name: x" + bad + "\n"); }), "", "inline.yaml:4:8",
                "is not valid UTF-8 text");
  CHECK(load(kModelAndData + "# caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\ntrain: {epochs: 3}\n").train.epochs == 3);
}
