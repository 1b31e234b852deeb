// configs/: a YAML training recipe -> typed, validated specs.
//
//   dl::Config cfg = dl::load_config("recipes/fashion_mnist/lenet.yaml", {"optimizer.lr=0.05"});
//   cfg.optimizer.lr;            // 0.05
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
#include <string>
#include <vector>

#include "engine/graph/spec.h"

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

struct DataSplitSpec {  // an IDX image file and its label file, relative to DataSpec::root
  std::string images;
  std::string labels;
  bool operator==(const DataSplitSpec&) const = default;
};

struct LoaderSpec {  // torch.utils.data.DataLoader
  int64_t batch_size = 0;
  bool shuffle = false;    // reshuffle the training set every epoch (never val/test)
  bool drop_last = false;  // drop the last incomplete training batch
  int64_t prefetch = 0;    // batches prepared ahead by the loader thread (0 = synchronous)
  bool operator==(const LoaderSpec&) const = default;
};

// A per-sample transform, applied in list order (torchvision.transforms vocabulary).
struct TransformSpec {
  std::string type;  // "to_float", "normalize"
  AttrMap attrs;     // resolved, defaults filled
  bool operator==(const TransformSpec&) const = default;
};

struct DataSpec {
  std::string dataset;  // "fashion_mnist", "mnist" (presets fill format/root/files) or any name
  std::string format;   // "idx"
  std::string root;     // directory holding the files
  DataSplitSpec train, test;
  int64_t val_size = 0;  // last N training samples held out for validation (0 = none)
  std::vector<TransformSpec> transforms;
  LoaderSpec loader;
  bool operator==(const DataSpec&) const = default;
};

struct LossSpec {  // torch.nn.functional losses; fields a type does not use stay zero
  std::string type;            // cross_entropy, nll_loss, mse_loss, l1_loss, smooth_l1_loss,
                               // binary_cross_entropy, binary_cross_entropy_with_logits
  std::string reduction;       // "mean" | "sum"
  double label_smoothing = 0;  // cross_entropy
  int64_t ignore_index = 0;    // cross_entropy, nll_loss
  double beta = 0;             // smooth_l1_loss
  bool operator==(const LossSpec&) const = default;
};

// The hyper-parameters of torch.optim's SGD, Adam and AdamW. A type uses its own subset; the
// others stay zero/empty.
struct OptimizerHyper {
  double lr = 0;
  double momentum = 0, dampening = 0;  // sgd
  bool nesterov = false;               // sgd
  double weight_decay = 0;
  std::vector<double> betas;           // adam, adamw: [beta1, beta2]
  double eps = 0;                      // adam, adamw
  bool amsgrad = false;                // adam, adamw
  bool operator==(const OptimizerHyper&) const = default;
};

// A PyTorch param group: the parameters whose state_dict names match any glob in `params`
// ("*.bias", "fc.*"; `*` matches any run of characters, dots included). A parameter belongs to
// the first group it matches; unmatched ones form the default group (the optimizer's values).
struct ParamGroupSpec {
  std::vector<std::string> params;  // globs over state_dict names
  AttrMap overrides;                // only the keys this group sets ("weight_decay" -> 0.0)
  OptimizerHyper hyper;             // the optimizer's values with `overrides` applied
  bool operator==(const ParamGroupSpec&) const = default;
};

struct OptimizerSpec : OptimizerHyper {
  std::string type;  // sgd | adam | adamw
  std::vector<ParamGroupSpec> param_groups;
  bool operator==(const OptimizerSpec&) const = default;
};

// torch.optim.lr_scheduler; fields a type does not use stay zero/empty.
struct SchedulerSpec {
  static constexpr int64_t kAuto = 0;  // T_max: auto -> total number of scheduler steps

  std::string type;          // none, step, multi_step, exponential, cosine_annealing, linear,
                             // reduce_on_plateau
  std::string interval;      // "epoch" | "step": when scheduler.step() is called
  int64_t step_size = 0;     // step
  double gamma = 0;          // step, multi_step, exponential
  std::vector<int64_t> milestones;  // multi_step (strictly increasing)
  int64_t T_max = 0;         // cosine_annealing; kAuto = epochs (or total steps)
  double eta_min = 0;        // cosine_annealing
  double start_factor = 0, end_factor = 0;  // linear
  int64_t total_iters = 0;   // linear
  std::string mode;          // reduce_on_plateau: "min" | "max"
  double factor = 0;         // reduce_on_plateau
  int64_t patience = 0, cooldown = 0;  // reduce_on_plateau
  double threshold = 0;      // reduce_on_plateau
  std::string threshold_mode;  // reduce_on_plateau: "rel" | "abs"
  double min_lr = 0;         // reduce_on_plateau
  std::string metric;        // reduce_on_plateau: "val/loss", "val/accuracy", ...
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
// checked with the config's own rules (engine/train/restore_check.h).
const AttrSchema* find_hyper_schema(const std::string& section, const std::string& type, const std::string& key);

}  // namespace dl
