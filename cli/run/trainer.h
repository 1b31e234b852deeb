// The training loop: a Config in, a trained model and a run directory out.
//
//   Trainer t(cfg, {.run_dir = "runs/lenet"});
//   RunResult r = t.run();        // epochs/max_steps, periodic eval, final test accuracy
//
// Run directory: config.yaml (the resolved config), metrics.jsonl (one JSON object per logged
// event), events.out.tfevents.* (TensorBoard scalars train/loss, train/lr, val/loss,
// val/accuracy, ...).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <functional>
#include <vector>

#include "configs/config.h"
#include "datasets/dataloader.h"
#include "cli/run/checkpointing.h"
#include "cli/run/evaluate.h"
#include "cli/run/setup.h"
#include "engine/amp/autocast.h"
#include "engine/amp/grad_scaler.h"
#include "engine/dist/process_group.h"
#include "engine/optim/ema.h"
#include "engine/train/step.h"
#include "exporters/metrics.h"
#include "exporters/progress.h"
#include "exporters/tensorboard.h"

namespace dl::dist {
class Reducer;
}

namespace dl::train {

struct RunOptions {
  std::string run_dir;  // "" = runs/<config name>
  exporters::ProgressReporter::Mode mode = exporters::ProgressReporter::Mode::human;
  bool tty = false;
  bool write_outputs = true;  // false: no run directory (bench, tests)
  bool final_test = true;     // evaluate the test split at the end
  // Resume: a full checkpoint to continue from (weights, optimizer, scheduler, position, RNG).
  std::optional<Checkpoint> resume_from;
  std::string resume_path;    // for messages
  // --init-from: weights to load before training (strict like load_state_dict(strict=True)).
  std::optional<StateDict> init_weights;
  std::string init_path;
  bool strict = true;
  bool requeue = false;       // SIGUSR1 under SLURM: `scontrol requeue` after the checkpoint
  bool handle_signals = true;
  // Called after every optimizer step with the global step (tests use it to send signals).
  std::function<void(int64_t)> on_step;
  // Data-parallel training: this process's group (null = a world of one) and the launcher's
  // environment it came from (threads per rank). Every rank runs a Trainer with the same config;
  // see "Data-parallel training" below.
  dist::ProcessGroupPtr group;
  dist::DistEnv dist_env;
  // Resume a checkpoint written by a different number of ranks (not bit-exact; said once).
  bool allow_world_size_change = false;
  // Read the training loss (and check it is finite, and the targets' range) every log_every
  // steps, before evaluations and checkpoints, instead of every step: on a GPU a read waits for
  // the device. The numbers are the same; a NaN loss is found later, after its update ran.
  // Default: on for CUDA. Tests turn it on for the CPU, which runs the same code.
  std::optional<bool> defer_host_reads;
};

struct RunResult {
  int exit_code = 0;          // 0, or 75 when stopped by a signal after a checkpoint
  int stop_signal = 0;
  int64_t steps = 0;
  int64_t epochs_done = 0;
  double train_seconds = 0;   // optimizer steps only (data waits included, eval excluded)
  double samples_per_s = 0;
  std::vector<double> losses;  // every step's training loss, in order
  std::optional<EvalResult> val, test;
};

// Thrown when the loss becomes NaN or infinite (the CLI exits 1).
class NonFiniteLossError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Data-parallel training (RunOptions::group of world size > 1; PyTorch's DistributedDataParallel
// with DistributedSampler): rank 0's initial weights are broadcast; every rank reads its shard of
// the same epoch permutation (padded to equal shards) in batches of data.loader.batch_size (or
// global_batch_size / ranks); gradients are averaged by bucketed allreduce during backward;
// evaluation is sharded and reduced. Rank 0 alone writes the run directory (logs, metrics,
// TensorBoard, checkpoints holding every rank's loader and RNG state); all ranks resume from it.
// A stop signal on any rank stops every rank after the same step (they agree by allreduce).
class Trainer {
 public:
  Trainer(Config cfg, RunOptions options);
  ~Trainer();

  RunResult run();
  // Evaluates the model on `split` ("val" or "test") in eval mode, without grad.
  EvalResult evaluate(const std::string& split);

  GraphModel& model() { return *model_; }
  // The complete state as a checkpoint (tensors alias the live ones: save it before stepping).
  // A collective in data-parallel runs (every rank's loader and RNG state is gathered).
  Checkpoint make_checkpoint(bool finished);
  optim::Optimizer& optimizer() { return *optimizer_; }
  const Config& config() const { return cfg_; }
  const std::string& run_dir() const { return run_dir_; }

 private:
  void log_eval(const EvalResult& r, bool final);
  // Autoencoders (loss.target: input): the split's first 16 images and the model's
  // reconstructions of them as TensorBoard image grids (<split>/inputs, <split>/reconstructions).
  void log_reconstructions(const std::string& split, const std::shared_ptr<const data::Dataset>& ds);
  void restore(const Checkpoint& c, const std::string& path);
  bool scheduler_per_step() const;  // stepped after every optimizer step (else once per epoch)
  int64_t steps_per_epoch() const;  // optimizer steps: ceil(batches / accumulate_steps)
  void save_checkpoint_now(bool numbered, bool finished);
  void update_best(const EvalResult& r);
  void step_metric_scheduler(const EvalResult& val);
  void log_hparams(const RunResult& r);
  // Data-parallel setup: the per-rank batch size (data.loader.global_batch_size), SyncBatchNorm,
  // per-rank RNG streams; a line saying what runs where. (attach_ddp broadcasts rank 0's weights.)
  void setup_data_parallel_model();
  // The number of ranks that wrote `c` (/trainer world_size, absent = 1). Another number than
  // this run's is refused unless --allow-world-size-change (then warned once).
  int64_t check_world_size(const Checkpoint& c, const std::string& path);
  bool main_rank() const { return rank_ == 0; }

  Config cfg_;
  RunOptions opt_;
  dist::ProcessGroupPtr group_;  // a world of one when not data-parallel
  int rank_ = 0, world_ = 1;
  std::string run_dir_;
  Device device_;
  data::Splits splits_;
  std::shared_ptr<GraphModel> model_;
  LossFn loss_fn_;
  std::vector<std::string> loss_nodes_;  // what a forward pass returns for the loss
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<sched::LRScheduler> scheduler_;
  std::unique_ptr<TrainStep> step_fn_;  // forward, loss, backward, accumulate, clip, update
  amp::Precision precision_ = amp::Precision::FP32;  // train.precision
  std::unique_ptr<amp::GradScaler> scaler_;  // loss scaling (fp16 by default), held by step_fn_
  std::shared_ptr<dist::Reducer> ddp_;  // data-parallel gradient reducer attached to step_fn_
  std::unique_ptr<optim::ExponentialMovingAverage> ema_;  // train.ema_decay > 0: evaluated weights
  std::unique_ptr<data::DataLoader> train_loader_;
  std::unique_ptr<exporters::ProgressReporter> progress_;
  std::unique_ptr<exporters::MetricsWriter> metrics_;
  std::unique_ptr<exporters::TensorBoardWriter> tensorboard_;
  std::unique_ptr<CheckpointManager> checkpoints_;
  TrainerPosition pos_;       // restored position (when resuming) and best-metric state
  bool resumed_ = false;
  int64_t step_ = 0;
  int64_t epoch_ = 0;
  // Losses not read back yet (defer_host_reads): each step's 0-dim loss on the device, with
  // its step and epoch for the message when it is not finite.
  struct PendingLoss {
    Tensor value;
    int64_t step = 0, epoch = 0;
  };
  std::vector<PendingLoss> pending_losses_;
  std::vector<double> losses_;  // every micro-batch's loss that was read, in order (RunResult::losses)
  void read_pending_losses();
  double window_loss_ = 0;
  int64_t window_steps_ = 0, window_samples_ = 0;
  double start_time_ = 0;
};

// Configures the CPU thread count for the engine (OpenMP + oneDNN): 0 = all cores, at most
// TrainSpec::kMaxThreads; beyond that std::invalid_argument (the config refuses it first).
void set_num_threads(int64_t threads);
// train.threads for this rank: `threads` when set; else SLURM_CPUS_PER_TASK (env.cpus_per_task),
// else the cores divided among the ranks of this node; 0 (all cores) without data parallelism.
int64_t threads_per_rank(int64_t threads, const dist::DistEnv& env);

// The loader options a config asks for on the training split or an evaluation split: the
// split's transforms (augment only when training), workers, batch size. No sampler (below).
data::LoaderOptions loader_options(const Config& cfg, bool training);
// data.loader.sampler over the training split; null = by data.loader.shuffle. ConfigError
// naming data.loader.sampler for options that do not fit the dataset.
data::SamplerPtr build_sampler(const Config& cfg, const data::Dataset& train);

}  // namespace dl::train
