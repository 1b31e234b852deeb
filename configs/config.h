// configs/: a YAML training recipe -> typed, validated specs.
//
//   dl::Config cfg = dl::load_config("recipes/fashion_mnist/lenet.yaml", {"optimizer.lr=0.05"});
//   cfg.optimizer.hyper.at("lr");  // 0.05 (an AttrValue: the schema says it holds a double)
//   cfg.model.nodes[0].type;     // "conv2d" (engine/graph/spec.h)
//   cfg.train.epochs;            // default filled in when the recipe left it out
//   std::cout << dl::to_yaml(cfg);   // the resolved config: every key, defaults included
//
// Loading is: read the file -> follow `extends:` (deep merge, this file wins) -> apply
// `key=value` overrides -> validate every key against the schema (configs/schema.cpp) and fill
// defaults. Any problem throws dl::ConfigError listing ALL problems found, each as
//
//   lenet.yaml:7:20: error: model.layers[2].kernel_size: expected an integer >= 1 or a list of
//   2 such integers, got -3
//   lenet.yaml:9:5: error: optimizer.momentun: unknown key (did you mean 'momentum'?)
//
// Every key, its kind, default and range is listed in configs/README.md, which is generated
// from the same tables the validator uses (config_reference_markdown()). Names follow PyTorch
// (torch.nn / torch.optim / torch.optim.lr_scheduler argument names and defaults).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <map>
#include <string>
#include <vector>

#include "engine/graph/spec.h"
#include "engine/sched/registry.h"

namespace dl {

struct AttrSchema;  // engine/graph/layer_schema.h

// ---- Errors ---------------------------------------------------------------------------------

// One problem in a config: where, which key, what is wrong, and a hint when one helps.
struct Diagnostic {
  SourceLoc loc;        // file:line:col of the offending key or value
  std::string path;     // dotted key path: "model.layers[2].kernel_size" ("" = whole file)
  std::string message;  // "expected an integer >= 1, got -3"
  std::string hint;     // "did you mean 'kernel_size'?" or "valid keys: ..." ("" = none)

  // "file:line:col: error: path: message (hint)"
  std::string str() const;
};

// The one exception configs/ throws (the CLI maps it to exit code 2). what() is the full
// multi-line message, one Diagnostic per line, in file/line order.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<Diagnostic> diagnostics);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

// ---- Specs ----------------------------------------------------------------------------------
// Defaults are NOT written here: the schema tables in configs/schema.cpp hold them (and the
// docs are generated from those). A Config from load_config has every field set.

// data.loader.sampler: a registered sampler (datasets/sampler.h); type "" = random when
// shuffle, else sequential.
struct SamplerSpec {
  std::string type;
  AttrMap attrs;  // resolved
  bool operator==(const SamplerSpec&) const = default;
};

struct LoaderSpec {  // torch.utils.data.DataLoader
  int64_t batch_size = 0;
  bool shuffle = false;    // reshuffle the training set every epoch (never val/test)
  bool drop_last = false;  // drop the last incomplete training batch
  int64_t prefetch = 0;    // ready batches queued per worker (0 = synchronous, no worker thread)
  int64_t workers = 0;     // threads preparing batches (num_workers)
  SamplerSpec sampler;     // training split only
  // Data-parallel runs: batch_size is per rank (PyTorch's DistributedSampler convention); a
  // global_batch_size > 0 sets the batch over all ranks instead (per rank = global / ranks,
  // whatever the world size: Caffe's and Darknet's convention). 0 = unset.
  int64_t global_batch_size = 0;
  // Batches in page-locked memory, so their copy to the GPU is asynchronous (PyTorch's
  // pin_memory): "auto" (on when train.device is cuda) | "true" | "false".
  std::string pin_memory = "auto";
  bool operator==(const LoaderSpec&) const = default;
};

// A per-sample transform, applied in list order (torchvision.transforms vocabulary; the
// registry is datasets/transforms.h).
struct TransformSpec {
  std::string type;  // "to_float", "normalize", "random_crop", ...
  AttrMap attrs;     // resolved, defaults filled
  bool operator==(const TransformSpec&) const = default;
};

// `format` names a registration (datasets/format.h) whose schemas validated `options` (keys
// under data:) and each split's keys; the datasets library opens them from these maps.
struct DataSpec {
  std::string dataset;  // "fashion_mnist", "mnist" (presets fill format/root/files) or any name
  std::string format;   // "idx", "image_folder", "csv", "hdf5", "text"
  std::string root;     // directory holding the files
  AttrMap options;      // the format's keys (resolved)
  std::map<std::string, AttrMap> splits;  // "train" / "val" / "test" -> the split's keys (resolved)
  int64_t val_size = 0;        // last N training samples held out for validation (0 = none)
  double val_fraction = 0;     // or a seeded random fraction of them
  double test_fraction = 0;    // a seeded random test split (taken before val)
  int64_t split_seed = 0;      // the random splits' permutation
  bool in_memory = false;      // decode/load everything up front
  std::vector<TransformSpec> augment;     // training split only, before transforms (random ones)
  std::vector<TransformSpec> transforms;  // every split (deterministic)
  LoaderSpec loader;
  bool operator==(const DataSpec&) const = default;
};

// The loss, optimizer and scheduler sections are generic: their `type:` names a registration
// (engine/nn/loss_registry.h, engine/optim/registry.h, engine/sched/registry.h) whose schema
// validated `attrs` and filled the defaults; the engine builds them from these maps. A new loss,
// optimizer or scheduler therefore needs no change here.

struct LossSpec {  // torch.nn losses
  std::string type;   // registry name: cross_entropy, mse_loss, triplet_margin_loss, ...
  AttrMap attrs;      // resolved options (reduction, weight, margin, ...)
  // Model nodes feeding the loss's non-target roles, in the registration's role order
  // (`loss.inputs: [anchor, positive, negative]`); empty = the model's output.
  std::vector<std::string> inputs;
  // What fills the loss's target role: "target" (the batch's target) or "input" (the model's
  // input, for autoencoders: `loss: {type: mse_loss, target: input}`).
  std::string target = "target";
  bool operator==(const LossSpec&) const = default;
};

// A PyTorch param group: the parameters whose state_dict names match any glob in `params`
// ("*.bias", "fc.*"; `*` matches any run of characters, dots included). A parameter belongs to
// the first group it matches; unmatched ones form the default group (the optimizer's values).
struct ParamGroupSpec {
  std::vector<std::string> params;  // globs over state_dict names
  AttrMap overrides;                // only the keys this group sets ("weight_decay" -> 0.0)
  AttrMap hyper;                    // the optimizer's values with `overrides` applied
  bool operator==(const ParamGroupSpec&) const = default;
};

struct OptimizerSpec {  // torch.optim
  std::string type;   // registry name: sgd, adam, rmsprop, lbfgs, ...
  AttrMap hyper;      // resolved hyper-parameters of the default group
  std::vector<ParamGroupSpec> param_groups;
  bool operator==(const OptimizerSpec&) const = default;
};

// torch.optim.lr_scheduler: the registry's SchedulerConfig {type, attrs, children} plus when
// scheduler.step() is called. "none" = constant lr.
struct SchedulerSpec : sched::SchedulerConfig {
  std::string interval;  // "epoch" | "step"
  bool operator==(const SchedulerSpec&) const = default;
};

struct TrainSpec {
  static constexpr int64_t kEveryEpoch = 0;  // eval_every: epoch

  int64_t epochs = 0;
  int64_t max_steps = 0;   // stop after this many optimizer steps (0 = no limit)
  int64_t log_every = 0;   // steps between training-loss log lines
  int64_t eval_every = 0;  // steps between evaluations; kEveryEpoch = end of each epoch
  int64_t seed = 0;
  std::string device;      // "cpu", "cuda", "cuda:N" (engine's Device::parse reads it)
  // oneDNN and libgomp have crashed with a few hundred threads (train.threads: 300 did in
  // oneDNN on one machine, 1000+ in libgomp); 256 trains here, so the schema stops there.
  static constexpr int64_t kMaxThreads = 256;
  int64_t threads = 0;     // CPU threads; 0 = all cores (at most kMaxThreads of them)
  bool requeue = false;    // SIGUSR1 under SLURM: checkpoint, then scontrol requeue
  // The training step (engine/train/step.h).
  int64_t accumulate_steps = 1;  // batches per optimizer step (gradient accumulation)
  double clip_grad_norm = 0;     // max total gradient norm (0 = off)
  double clip_norm_type = 2;     // p of that norm
  double clip_grad_value = 0;    // clamp gradient elements to [-v, v] (0 = off)
  double ema_decay = 0;          // exponential moving average of the weights (0 = off)
  int64_t histogram_every = 0;   // TensorBoard weight + gradient histograms every N steps (0 = off)
  // Mixed precision (engine/amp): "fp32" | "tf32" | "bf16" | "fp16".
  std::string precision = "fp32";
  // train.grad_scaler: dynamic loss scaling (engine/amp/grad_scaler.h; torch's GradScaler
  // defaults). Flat members of the nested YAML section (a nested struct with a string tripped
  // GCC 12's -Wmaybe-uninitialized in aggregate initialisations).
  std::string scaler_enabled = "auto";  // "auto" (on for precision fp16 only) | "true" | "false"
  double scaler_init_scale = 65536;
  double scaler_growth_factor = 2;
  double scaler_backoff_factor = 0.5;
  int64_t scaler_growth_interval = 2000;
  // Data-parallel training (several processes under mpirun / srun; engine/dist).
  std::string dist_backend = "auto";  // "auto" | "mpi" | "nccl"
  double dist_timeout = 300;          // seconds a collective may wait for the other ranks
  double bucket_cap_mb = 25;          // gradient allreduce bucket size (PyTorch DDP's bucket_cap_mb)
  bool sync_batch_norm = false;  // batch norm statistics over every rank's batch (SyncBatchNorm)
  bool operator==(const TrainSpec&) const = default;
};

struct MetricSpec {
  std::string type;   // "accuracy"
  int top_k = 0;      // accuracy: a hit when the label is among the k largest logits
  // The name in logs and in `split/name` references: "accuracy", or "top5" for top_k 5.
  std::string name() const;
  bool operator==(const MetricSpec&) const = default;
};

struct BestCheckpointSpec {
  std::string metric;  // "val/accuracy": keep best.h5 by this metric ("" = no best.h5)
  std::string mode;    // "min" | "max" | "auto" (min for a loss, max otherwise)
  bool operator==(const BestCheckpointSpec&) const = default;
};

struct CheckpointSpec {
  int64_t every_steps = 0;   // write step-<N>.h5 every N steps (0 = never)
  bool every_epoch = false;  // write last.h5 at the end of every epoch
  int64_t keep_last = 0;     // keep this many step-<N>.h5 files (0 = keep all)
  BestCheckpointSpec best;
  bool operator==(const CheckpointSpec&) const = default;
};

struct Config {
  std::string name;           // run name; default: the file's stem
  std::string source_path;    // the file it was loaded from (or the virtual file name)
  std::string resolved_yaml;  // to_yaml(*this) at load time: what actually runs
  ModelSpec model;
  DataSpec data;
  LossSpec loss;
  OptimizerSpec optimizer;
  SchedulerSpec scheduler;
  TrainSpec train;
  std::vector<MetricSpec> metrics;
  CheckpointSpec checkpoint;

  // Compares the settings; source_path and resolved_yaml (derived) are ignored.
  bool operator==(const Config& o) const;
};

// ---- Loading --------------------------------------------------------------------------------

// Loads `path`, follows `extends:`, applies `overrides` ("optimizer.lr=0.05",
// "model.layers[0].out_channels=8"; the value is parsed as YAML), validates and fills defaults.
// Throws ConfigError (every problem found) — never anything else for bad input.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from text; `virtual_filename` names it in errors, gives the default name (its stem)
// and anchors relative `extends:` paths. Used by tests and to reload the config stored in a
// checkpoint.
Config load_config_string(const std::string& yaml, const std::string& virtual_filename,
                          const std::vector<std::string>& overrides = {});

// The resolved config as YAML: every key with its value, defaults filled in, no `extends:`.
// load_config_string(to_yaml(c), ...) == c.
std::string to_yaml(const Config& config);

// Markdown reference of every key, kind, default and range, generated from the schema tables
// (configs/README.md embeds it; a test keeps the two equal).
std::string config_reference_markdown();

// Closest candidate to `word` (Damerau-Levenshtein distance <= 2, or `word` is a prefix of it),
// or "" when none is close. Exposed for the CLI's subcommand and flag suggestions.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

// The schema entry (kind, range, doc) of hyper-parameter `key` of optimizer or scheduler `type`,
// as the config spells them (section "optimizer" or "scheduler", type "sgd", "cosine_annealing",
// key "lr", "T_max"); nullptr when unknown. Lets a checkpoint's restored hyper-parameters be
// checked with the config's own rules (cli/run/restore_check.h).
const AttrSchema* find_hyper_schema(const std::string& section, const std::string& type, const std::string& key);

}  // namespace dl
