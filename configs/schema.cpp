// THE config schema: every key, its kind, default, range and one-line doc. The reader
// (read.cpp), the resolved-YAML writer (config.cpp) and the reference in configs/README.md
// (config_reference_markdown below) are all driven by these tables, so a new key, optimizer or
// scheduler is one entry here (plus its implementation in the engine). Layer types live in
// engine/graph/layer_schema.cpp. Names and defaults follow PyTorch.
#include "configs/detail.h"

namespace dl::config_detail {

using A = AttrSchema;

const char* const kDefaultLoss = "cross_entropy";
const char* const kDefaultOptimizer = "sgd";
const char* const kDefaultScheduler = "none";
const char* const kRunNameExpected =
    "a run name (a directory under runs/: not empty, '.' or '..', no '/' or control characters)";

std::string run_name_problem(const std::string& name) {
  if (name.empty()) return "is empty";
  if (name == "." || name == "..") return "'" + name + "' is not a directory of its own";
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '/') return "contains '/'";
    if (u < 0x20 || u == 0x7f) return "contains a control character";
  }
  return "";
}

namespace {
std::string device_rule(const AttrValue& v) {
  const std::string& s = std::get<std::string>(v);
  if (s == "cpu" || s == "cuda") return "";
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 9 &&
      s.find_first_not_of("0123456789", 5) == std::string::npos)
    return "";
  return "bad device";
}
std::string run_name_rule(const AttrValue& v) {
  return run_name_problem(std::get<std::string>(v));
}
A reduction() {
  return A::choice("reduction", {"mean", "sum"}, "mean").describe("how per-sample losses combine");
}
A interval() {
  return A::choice("interval", {"epoch", "step"}, "epoch")
      .describe("call scheduler.step() after every epoch or every optimizer step");
}
}  // namespace

const std::vector<Field<Config>>& top_fields() {
  static const std::vector<Field<Config>> t = {
      field(&Config::name, A::string("name").optional()
                               .check(run_name_rule, kRunNameExpected)
                               .describe("run name (runs/<name>/); default: the file's stem")),
  };
  return t;
}

const std::vector<Field<DataSpec>>& data_fields() {
  static const std::vector<Field<DataSpec>> t = {
      field(&DataSpec::dataset,
            A::string("dataset").describe("dataset name; a preset (below) fills the rest")),
      field(&DataSpec::format, A::choice("format", {"idx"}, "idx")
                                   .describe("file format (idx: MNIST-style, .gz allowed)")),
      field(&DataSpec::root,
            A::string("root").optional().describe("directory of the files; default: preset's")),
      field(&DataSpec::val_size, A::integer("val_size", 0).at_least(0)
                                     .describe("last N training samples held out as val split")),
  };
  return t;
}

const std::vector<Field<DataSplitSpec>>& split_fields() {
  static const std::vector<Field<DataSplitSpec>> t = {
      field(&DataSplitSpec::images,
            A::string("images").optional().describe("image file under root; default: preset's")),
      field(&DataSplitSpec::labels,
            A::string("labels").optional().describe("label file under root; default: preset's")),
  };
  return t;
}

const std::vector<Field<LoaderSpec>>& loader_fields() {
  static const std::vector<Field<LoaderSpec>> t = {
      field(&LoaderSpec::batch_size,
            A::integer("batch_size", 64).at_least(1).describe("samples per batch")),
      field(&LoaderSpec::shuffle,
            A::boolean("shuffle", true).describe("reshuffle the training set every epoch")),
      field(&LoaderSpec::drop_last,
            A::boolean("drop_last", false).describe("drop the last incomplete training batch")),
      field(&LoaderSpec::prefetch, A::integer("prefetch", 2).at_least(0)
                                       .describe("batches prepared ahead (0 = synchronous)")),
  };
  return t;
}

const std::vector<AttrTypeEntry>& transform_types() {
  static const std::vector<AttrTypeEntry> t = {
      {"to_float", "pixels to float32 times scale (torchvision ToTensor: 1/255)",
       {A::floating("scale", 1.0 / 255).describe("multiplier")}},
      {"normalize", "torchvision Normalize: (x - mean[c]) / std[c] per channel",
       {A::float_list("mean").length(1, 4096).describe("per-channel mean"),
        A::float_list("std").length(1, 4096).above(0).describe("per-channel std")}},
  };
  return t;
}
std::vector<TransformSpec> default_transforms() {
  TransformSpec t{"to_float", {}};
  fill_attr_defaults(transform_types()[0].attrs, t.attrs);
  return {t};
}

const std::vector<TypeEntry<LossSpec>>& loss_types() {
  static const std::vector<TypeEntry<LossSpec>> t = {
      {"cross_entropy", "torch.nn.CrossEntropyLoss on logits and class indices",
       {field(&LossSpec::reduction, reduction()),
        field(&LossSpec::label_smoothing,
              A::floating("label_smoothing", 0.0).range(0, 1)
                  .describe("mix targets with the uniform distribution")),
        field(&LossSpec::ignore_index, A::integer("ignore_index", -100)
                                           .describe("target value that is ignored"))}},
      {"nll_loss", "torch.nn.NLLLoss on log-probabilities",
       {field(&LossSpec::reduction, reduction()),
        field(&LossSpec::ignore_index, A::integer("ignore_index", -100)
                                           .describe("target value that is ignored"))}},
      {"mse_loss", "torch.nn.MSELoss", {field(&LossSpec::reduction, reduction())}},
      {"l1_loss", "torch.nn.L1Loss", {field(&LossSpec::reduction, reduction())}},
      {"smooth_l1_loss", "torch.nn.SmoothL1Loss",
       {field(&LossSpec::reduction, reduction()),
        field(&LossSpec::beta, A::floating("beta", 1.0).at_least(0)
                                   .describe("L1/L2 switch point"))}},
      {"binary_cross_entropy", "torch.nn.BCELoss on probabilities",
       {field(&LossSpec::reduction, reduction())}},
      {"binary_cross_entropy_with_logits", "torch.nn.BCEWithLogitsLoss on logits",
       {field(&LossSpec::reduction, reduction())}},
  };
  return t;
}

namespace {
using H = OptimizerHyper;
std::vector<Field<H>> adam_fields(double weight_decay) {
  return {field(&H::lr, A::floating("lr", 1e-3).at_least(0).describe("learning rate")),
          field(&H::betas, A::float_list("betas").def(std::vector<double>{0.9, 0.999})
                               .length(2, 2).range(0, 1, /*hi_open=*/true)
                               .describe("decay rates of the 1st and 2nd moment averages")),
          field(&H::eps, A::floating("eps", 1e-8).at_least(0).describe("added to the denominator")),
          field(&H::weight_decay, A::floating("weight_decay", weight_decay).at_least(0)
                                      .describe("L2 penalty (adamw: decoupled decay)")),
          field(&H::amsgrad, A::boolean("amsgrad", false).describe("use the AMSGrad variant"))};
}
}  // namespace

const std::vector<TypeEntry<OptimizerHyper>>& optimizer_types() {
  static const std::vector<TypeEntry<H>> t = {
      {"sgd", "torch.optim.SGD (nesterov needs momentum > 0 and dampening 0)",
       {field(&H::lr, A::floating("lr", 1e-3).at_least(0).describe("learning rate")),
        field(&H::momentum, A::floating("momentum", 0.0).at_least(0).describe("momentum factor")),
        field(&H::dampening, A::floating("dampening", 0.0).at_least(0)
                                 .describe("dampening for momentum")),
        field(&H::nesterov, A::boolean("nesterov", false).describe("Nesterov momentum")),
        field(&H::weight_decay, A::floating("weight_decay", 0.0).at_least(0)
                                    .describe("L2 penalty"))}},
      {"adam", "torch.optim.Adam", adam_fields(0.0)},
      {"adamw", "torch.optim.AdamW", adam_fields(1e-2)},
  };
  return t;
}

const std::vector<TypeEntry<SchedulerSpec>>& scheduler_types() {
  using S = SchedulerSpec;
  auto gamma = [](std::optional<double> def) {
    A a = def ? A::floating("gamma", *def) : A::floating("gamma");
    return field(&S::gamma, a.above(0).describe("multiplicative factor of lr decay"));
  };
  static const std::vector<TypeEntry<S>> t = {
      {"none", "constant learning rate", {field(&S::interval, interval())}},
      {"step", "torch.optim.lr_scheduler.StepLR: lr *= gamma every step_size steps",
       {field(&S::step_size, A::integer("step_size").at_least(1).describe("period of lr decay")),
        gamma(0.1), field(&S::interval, interval())}},
      {"multi_step", "MultiStepLR: lr *= gamma at each milestone",
       {field(&S::milestones, A::int_list("milestones").length(1, 100000).at_least(1)
                                  .describe("strictly increasing step/epoch indices")),
        gamma(0.1), field(&S::interval, interval())}},
      {"exponential", "ExponentialLR: lr *= gamma every step",
       {gamma(std::nullopt), field(&S::interval, interval())}},
      {"cosine_annealing", "CosineAnnealingLR from lr to eta_min over T_max steps",
       {field(&S::T_max, A::integer("T_max", S::kAuto).at_least(1).keyword("auto", S::kAuto)
                             .describe("half period; auto = train.epochs, or total steps for "
                                       "interval step")),
        field(&S::eta_min, A::floating("eta_min", 0.0).at_least(0).describe("minimum lr")),
        field(&S::interval, interval())}},
      {"linear", "LinearLR: factor goes linearly from start_factor to end_factor",
       {field(&S::start_factor, A::floating("start_factor", 1.0 / 3).above(0).at_most(1)
                                    .describe("factor at the first step")),
        field(&S::end_factor, A::floating("end_factor", 1.0).range(0, 1)
                                  .describe("factor after total_iters steps")),
        field(&S::total_iters, A::integer("total_iters", 5).at_least(1)
                                   .describe("steps to reach end_factor")),
        field(&S::interval, interval())}},
      {"reduce_on_plateau", "ReduceLROnPlateau: lr *= factor when `metric` stops improving",
       {field(&S::metric, A::string("metric", "val/loss")
                              .describe("split/metric to watch (evaluated every eval)")),
        field(&S::mode,
              A::choice("mode", {"min", "max"}, "min").describe("improve = lower/higher")),
        field(&S::factor, A::floating("factor", 0.1).above(0).below(1)
                              .describe("lr multiplier on a plateau")),
        field(&S::patience, A::integer("patience", 10).at_least(0)
                                .describe("evaluations without improvement before reducing")),
        field(&S::threshold, A::floating("threshold", 1e-4).at_least(0)
                                 .describe("minimum change that counts as improvement")),
        field(&S::threshold_mode, A::choice("threshold_mode", {"rel", "abs"}, "rel")
                                      .describe("threshold relative or absolute")),
        field(&S::cooldown, A::integer("cooldown", 0).at_least(0)
                                .describe("evaluations to wait after a reduction")),
        field(&S::min_lr, A::floating("min_lr", 0.0).at_least(0).describe("lower bound on lr")),
        field(&S::interval, interval())}},
  };
  return t;
}

const std::vector<Field<TrainSpec>>& train_fields() {
  using T = TrainSpec;
  static const std::vector<Field<T>> t = {
      field(&T::epochs, A::integer("epochs", 10).at_least(1).describe("passes over the train set")),
      field(&T::max_steps, A::integer("max_steps", 0).at_least(0)
                               .describe("stop after this many optimizer steps (0 = no limit)")),
      field(&T::log_every, A::integer("log_every", 100).at_least(1)
                               .describe("steps between training log lines")),
      field(&T::eval_every, A::integer("eval_every", T::kEveryEpoch).at_least(1)
                                .keyword("epoch", T::kEveryEpoch)
                                .describe("evaluate every N steps, or at the end of each epoch")),
      field(&T::seed, A::integer("seed", 0).at_least(0).describe("seeds every RNG stream")),
      field(&T::device, A::string("device", "cpu")
                            .check(device_rule, "'cpu', 'cuda' or 'cuda:N'")
                            .describe("where to train")),
      field(&T::threads, A::integer("threads", 0).range(0, TrainSpec::kMaxThreads)
                             .describe("CPU threads (0 = all cores, at most 256)")),
      field(&T::requeue, A::boolean("requeue", false)
                             .describe("on SIGUSR1 under SLURM: checkpoint, then `scontrol requeue` the job")),
  };
  return t;
}

const std::vector<TypeEntry<MetricSpec>>& metric_types() {
  static const std::vector<TypeEntry<MetricSpec>> t = {
      {"accuracy", "fraction of samples whose label is among the top_k logits "
                   "(`top5` is short for {type: accuracy, top_k: 5})",
       {field(&MetricSpec::top_k, A::integer("top_k", 1).at_least(1)
                                      .describe("logged as accuracy (k = 1) or top<k>"))}},
  };
  return t;
}
std::vector<MetricSpec> default_metrics() { return {}; }

const std::vector<Field<CheckpointSpec>>& checkpoint_fields() {
  using C = CheckpointSpec;
  static const std::vector<Field<C>> t = {
      field(&C::every_steps, A::integer("every_steps", 0).at_least(0)
                                 .describe("write step-<N>.h5 every N steps (0 = never)")),
      field(&C::every_epoch, A::boolean("every_epoch", true)
                                 .describe("write last.h5 at the end of every epoch")),
      field(&C::keep_last, A::integer("keep_last", 3).at_least(0)
                               .describe("step-<N>.h5 files kept (0 = all)")),
  };
  return t;
}

const std::vector<Field<BestCheckpointSpec>>& best_fields() {
  using B = BestCheckpointSpec;
  static const std::vector<Field<B>> t = {
      field(&B::metric, A::string("metric", "")
                            .describe("split/metric that selects best.h5 (\"\" = no best.h5)")),
      field(&B::mode, A::choice("mode", {"auto", "min", "max"}, "auto")
                          .describe("auto: min for loss, max otherwise")),
  };
  return t;
}

const std::vector<DatasetPreset>& dataset_presets() {
  static const std::vector<DatasetPreset> t = {
      {"fashion_mnist", "idx", "/usr/share/datasets/fashion-mnist",
       {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
       {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}},
      {"mnist", "idx", "/usr/share/datasets/mnist",
       {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
       {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}},
  };
  return t;
}

}  // namespace dl::config_detail

namespace dl {
std::string MetricSpec::name() const { return top_k == 1 ? type : "top" + std::to_string(top_k); }
}  // namespace dl
