// THE config schema: every key, its kind, default, range and one-line doc. The reader
// (read.cpp), the resolved-YAML writer (config.cpp) and the reference in configs/README.md
// (config_reference_markdown below) are all driven by these tables, so a new key, optimizer or
// scheduler is one entry here (plus its implementation in the engine). Layer types live in
// engine/graph/layer_schema.cpp. Names and defaults follow PyTorch.
#include <algorithm>

#include "configs/detail.h"
#include "datasets/format.h"
#include "datasets/sampler.h"
#include "datasets/transforms.h"
#include "engine/nn/loss_registry.h"
#include "engine/optim/registry.h"
#include "engine/sched/registry.h"

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
  return "not a device name";
}
std::string run_name_rule(const AttrValue& v) {
  return run_name_problem(std::get<std::string>(v));
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
            A::string("dataset", "").describe("dataset name; a preset (below) fills the rest")),
      field(&DataSpec::format, A::choice("format", data::format_names(), "idx")
                                   .describe("data format (below); default: the preset's, else idx")),
      field(&DataSpec::root,
            A::string("root").optional().describe("directory of the files; default: preset's")),
      field(&DataSpec::val_size, A::integer("val_size", 0).at_least(0)
                                     .describe("last N training samples held out as val split")),
      field(&DataSpec::val_fraction, A::floating("val_fraction", 0.0).range(0, 1, true)
                                         .describe("a seeded random fraction of training samples as val")),
      field(&DataSpec::test_fraction, A::floating("test_fraction", 0.0).range(0, 1, true)
                                          .describe("a seeded random fraction of training samples as test")),
      field(&DataSpec::split_seed, A::integer("split_seed", 0).at_least(0)
                                       .describe("seed of the val_fraction/test_fraction split")),
      field(&DataSpec::in_memory, A::boolean("in_memory", false)
                                      .describe("load/decode every sample up front")),
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
      field(&LoaderSpec::prefetch, A::integer("prefetch", 2).at_least(0).at_most(64)
                                       .describe("ready batches per worker (0 = synchronous)")),
      field(&LoaderSpec::workers, A::integer("workers", 1).at_least(0).at_most(64)
                                      .describe("threads decoding and transforming (num_workers)")),
      field(&LoaderSpec::global_batch_size,
            A::integer("global_batch_size", 0).at_least(0)
                .describe("data-parallel: the batch over all ranks (per rank = global / ranks); 0 = batch_size "
                          "is per rank")),
      field(&LoaderSpec::pin_memory,
            A::choice("pin_memory", {"auto", "true", "false"}, "auto")
                .describe("batches in pinned (page-locked) memory, copied to the GPU asynchronously; auto = on "
                          "when train.device is cuda")),
  };
  return t;
}

// A registry as the reference's type tables: one entry per definition, `schema` its attributes.
template <class Def>
std::vector<AttrTypeEntry> type_entries(const std::vector<Def>& defs, std::vector<AttrSchema> Def::*schema) {
  std::vector<AttrTypeEntry> r;
  for (const Def& d : defs) r.push_back({d.name, d.doc, d.*schema});
  return r;
}

const std::vector<AttrTypeEntry>& transform_types() {
  static const std::vector<AttrTypeEntry> t = type_entries(data::transform_defs(), &data::TransformDef::attrs);
  return t;
}
std::vector<TransformSpec> default_transforms() {
  TransformSpec t{"to_float", {}};
  fill_attr_defaults(data::transform_def("to_float").attrs, t.attrs);
  return {t};
}

const std::vector<AttrTypeEntry>& sampler_types() {
  static const std::vector<AttrTypeEntry> t = type_entries(data::sampler_defs(), &data::SamplerDef::attrs);
  return t;
}

// ---- loss, optimizer, scheduler: views of the engine's registries --------------------------------

const std::vector<AttrTypeEntry>& loss_types() {
  static const std::vector<AttrTypeEntry> t = type_entries(nn::loss_defs(), &nn::LossDef::attrs);
  return t;
}

const std::vector<AttrTypeEntry>& optimizer_types() {
  static const std::vector<AttrTypeEntry> t = type_entries(optim::optimizer_defs(), &optim::OptimizerDef::hyper);
  return t;
}

AttrSchema interval_attr() {
  return A::choice("interval", {"epoch", "step"}, "epoch")
      .describe("call scheduler.step() after every epoch or every optimizer step (metric-driven "
                "schedulers step after every evaluation instead)");
}

const std::vector<AttrTypeEntry>& scheduler_types() {
  static const std::vector<AttrTypeEntry> t = [] {
    std::vector<AttrTypeEntry> r = type_entries(sched::scheduler_defs(), &sched::SchedulerDef::attrs);
    // "none" first: the default, and the first row of the reference.
    std::stable_partition(r.begin(), r.end(), [](const AttrTypeEntry& e) { return e.type == "none"; });
    for (AttrTypeEntry& e : r) e.attrs.push_back(interval_attr());
    return r;
  }();
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
      field(&T::accumulate_steps, A::integer("accumulate_steps", 1).at_least(1)
                                      .describe("batches whose gradients add up before each optimizer step")),
      field(&T::clip_grad_norm, A::floating("clip_grad_norm", 0.0).at_least(0)
                                    .describe("clip_grad_norm_: max total gradient norm (0 = off)")),
      field(&T::clip_norm_type, A::floating("clip_norm_type", 2.0).above(0)
                                    .describe("p of the clipped norm (a large value ~ max norm)")),
      field(&T::clip_grad_value, A::floating("clip_grad_value", 0.0).at_least(0)
                                     .describe("clip_grad_value_: clamp every gradient to [-v, v] (0 = off)")),
      field(&T::ema_decay, A::floating("ema_decay", 0.0).range(0, 1, /*hi_open=*/true)
                               .describe("keep an exponential moving average of the weights, evaluated "
                                         "instead of them (0 = off; e.g. 0.999)")),
      field(&T::histogram_every, A::integer("histogram_every", 0).at_least(0)
                                     .describe("TensorBoard histograms of every weight and gradient every N "
                                               "steps (0 = off)")),
      field(&T::precision, A::choice("precision", {"fp32", "tf32", "bf16", "fp16"}, "fp32")
                               .describe("mixed precision: bf16/fp16 autocast (matmul/conv low, losses/softmax/"
                                         "norms f32, f32 master weights); tf32 = TF32 GEMMs on CUDA, fp32 on CPU")),
      field(&T::dist_backend, A::choice("dist_backend", {"auto", "mpi", "nccl"}, "auto")
                                  .describe("data-parallel collectives: mpi (CPU), nccl (CUDA), auto = by device")),
      field(&T::dist_timeout, A::floating("dist_timeout", 300.0).above(0)
                                  .describe("seconds a rank waits for the others before the job is aborted")),
      field(&T::bucket_cap_mb, A::floating("bucket_cap_mb", 25.0).above(0)
                                   .describe("data-parallel gradient allreduce bucket size in MiB")),
      field(&T::sync_batch_norm, A::boolean("sync_batch_norm", false)
                                     .describe("data-parallel: batch norm statistics over every rank's batch")),
  };
  return t;
}

const std::vector<Field<TrainSpec>>& grad_scaler_fields() {
  using G = TrainSpec;
  static const std::vector<Field<G>> t = {
      field(&G::scaler_enabled, A::choice("enabled", {"auto", "true", "false"}, "auto")
                             .describe("dynamic loss scaling; auto = on for precision fp16 only")),
      field(&G::scaler_init_scale, A::floating("init_scale", 65536.0).above(0).below(3.4e38)
                                .describe("initial loss scale")),
      field(&G::scaler_growth_factor, A::floating("growth_factor", 2.0).above(1)
                                   .describe("scale multiplier after growth_interval steps without inf/NaN")),
      field(&G::scaler_backoff_factor, A::floating("backoff_factor", 0.5).above(0).below(1)
                                    .describe("scale multiplier after a step with inf/NaN gradients (skipped)")),
      field(&G::scaler_growth_interval, A::integer("growth_interval", 2000).range(1, 2147483647)
                                     .describe("consecutive finite steps before the scale grows")),
  };
  return t;
}

const std::vector<TypeEntry<MetricSpec>>& metric_types() {
  static const std::vector<TypeEntry<MetricSpec>> t = {
      {"accuracy", "fraction of samples whose label is among the top_k logits "
                   "(`top5` is short for {type: accuracy, top_k: 5})",
       {field(&MetricSpec::top_k, A::integer("top_k", 1).at_least(1)
                                      .describe("logged as accuracy (k = 1) or top<k>"))}},
      {"knn_accuracy", "leave-one-out 1-nearest-neighbour accuracy of the model outputs as embeddings "
                       "(Euclidean distance; for metric learning such as triplet_margin_loss)",
       {}},
      {"bits_per_token", "class-index targets: mean cross-entropy of the softmax of the outputs in bits "
                         "(nats / ln 2), over every position of [N, C, T] outputs: bits per character of a "
                         "character language model (lower is better)", {}},
      {"sequence_accuracy", "sequence targets with a CTC loss: fraction of samples whose greedy decoding of the "
                            "output (ctc_greedy_decode, blank from the loss) equals their label sequence", {}},
      {"mae", "regression targets: mean absolute error over every target value", {}},
      {"rmse", "regression targets: root mean squared error over every target value", {}},
      {"r2", "regression targets: coefficient of determination R^2 (sklearn r2_score, averaged over the "
             "target's columns)", {}},
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
                          .describe("auto: min for loss, bits_per_token, mae and rmse, max otherwise")),
  };
  return t;
}

const std::vector<DatasetPreset>& dataset_presets() {
  static const std::vector<DatasetPreset> t = {
      {"fashion_mnist", "idx", "/usr/share/datasets/fashion-mnist",
       {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
       {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"},
       {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
        "Ankle boot"}},
      {"mnist", "idx", "/usr/share/datasets/mnist",
       {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
       {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"},
       {}},
  };
  return t;
}

}  // namespace dl::config_detail

namespace dl {
std::string MetricSpec::name() const {
  return type == "accuracy" && top_k != 1 ? "top" + std::to_string(top_k) : type;
}
}  // namespace dl
