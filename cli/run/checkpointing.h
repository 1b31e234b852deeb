// Live training state <-> checkpoint files (exporters/checkpoint.h holds the HDF5 format).
//
// A full checkpoint holds everything an exact resume needs: weights and buffers, optimizer
// slots and per-group hyper-parameters, scheduler state, the trainer's position (epoch,
// global step, batch in epoch, loader seed, the partial logging window, best metric) and the
// RNG streams (every device's default generator: dropout masks). Resuming from it continues
// bit-identically on CPU at the same thread count.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "configs/config.h"
#include "engine/nn/module.h"
#include "exporters/checkpoint.h"

namespace dl::train {

// Position of the loop; saved under /trainer.
struct TrainerPosition {
  int64_t epoch = 0;            // current epoch (0-based)
  int64_t global_step = 0;      // optimizer steps done
  int64_t batch_in_epoch = 0;   // batches of `epoch` already consumed
  uint64_t loader_seed = 0;
  double window_loss = 0;       // partial logging window (so logged averages match)
  int64_t window_steps = 0;
  int64_t window_samples = 0;
  std::string best_metric;      // e.g. "val/accuracy" ("" = none)
  std::optional<double> best_value;
  bool finished = false;        // the run reached its end
  std::optional<int64_t> ema_updates;  // updates of the weights' EMA (/ema), when the run keeps one
  // Loss scaling (train.grad_scaler, fp16): attributes grad_scaler.scale (f32 value as a double)
  // and grad_scaler.growth_tracker, when the run scales its loss.
  std::optional<double> grad_scale;
  std::optional<int64_t> grad_scaler_growth_tracker;
  // Data-parallel runs: the number of ranks (attribute world_size, absent = 1) and the loader
  // position of every rank but rank 0 (attributes rank<r>.batch_in_epoch, rank<r>.loader_seed;
  // rank 0's are the plain ones). Their RNG streams are /rng/rank<r>.<device>.
  struct RankPosition {
    int64_t batch_in_epoch = 0;
    uint64_t loader_seed = 0;
    bool operator==(const RankPosition&) const = default;
  };
  int64_t world_size = 1;
  std::vector<RankPosition> other_ranks;  // ranks 1 .. world_size - 1
};

// Read back (and validated) by check_restored_state (cli/run/restore_check.h).
std::map<std::string, AttrScalar> position_to_attrs(const TrainerPosition& p);

// Loads weights read from `path` into `model` (strict: like PyTorch's load_state_dict(strict=True)).
// A mismatch (missing or unexpected keys, shapes) throws CheckpointError naming the file, the
// keys, the config whose model it is (`config_path`) and the fix.
nn::LoadResult apply_weights(nn::Module& model, const StateDict& weights, bool strict, const std::string& path,
                             const std::string& config_path);

// Saves every default generator (cpu, cuda:N) as /rng/<device>.
std::map<std::string, std::vector<uint8_t>> capture_rng();
// Rank r's streams of a checkpoint's /rng (rank 0: the plain <device> names; rank r > 0:
// rank<r>.<device>, returned under the plain names).
std::map<std::string, std::vector<uint8_t>> rank_rng(const std::map<std::string, std::vector<uint8_t>>& rng, int rank);
void restore_rng(const std::map<std::string, std::vector<uint8_t>>& rng);

// Keys whose change between a checkpoint's config and the resuming config is refused: they
// alter the model, the data order or the optimisation trajectory (a saved state would
// otherwise silently override them). Returns one line per refused key ("model.layers[1]
// .out_features: checkpoint 256, now 128") and fills `applied` with the schedule keys that
// changed and are applied (train.epochs, train.max_steps, logging, checkpoint policy, ...).
std::vector<std::string> compare_resume_configs(const std::string& saved_yaml, const std::string& new_yaml,
                                                std::vector<std::string>& applied);

// Checkpoint file management of a run directory (run_dir/checkpoints/).
class CheckpointManager {
 public:
  CheckpointManager(std::string run_dir, CheckpointSpec spec);
  const std::string& dir() const { return dir_; }
  std::string last_path() const { return dir_ + "/last.h5"; }
  std::string best_path() const { return dir_ + "/best.h5"; }

  // Writes step-<N>.h5 (when `numbered`) and last.h5 atomically, then prunes old step files
  // beyond keep_last. Returns the path written.
  std::string save(const Checkpoint& ckpt, int64_t step, bool numbered);
  void save_best(const Checkpoint& ckpt);
  // Removes the temporary files a killed save left behind, and only those: exactly the names
  // save() writes through (step-<N>.h5.tmp, last.h5.tmp, best.h5.tmp, last.h5.link.tmp).
  // Call before the first save of a run. Returns the names removed.
  std::vector<std::string> remove_stale_temps() const;

 private:
  std::string dir_;
  CheckpointSpec spec_;
};

// Resolves `dltool resume RUN_DIR|CHECKPOINT` / `--resume PATH` to a checkpoint file.
std::string resolve_checkpoint_path(const std::string& run_dir_or_file);

// Keeps only metrics.jsonl records whose "step" is <= `step` (a resumed run rewrites the
// steps it is about to repeat). Atomic (write_file_atomic: temp file, fsync, rename).
void truncate_metrics(const std::string& metrics_path, int64_t step);

}  // namespace dl::train
