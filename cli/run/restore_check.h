// Validation of a checkpoint's training state before `resume` applies any of it.
//
// What dltool writes is self-consistent; a damaged, hand-edited or foreign file may not be, and
// its values reach divisions (T_max, step_size), casts (a NaN last_epoch) and loop bounds
// (global_step). So every value a resume restores is checked first:
//   - hyper-parameters (/optimizer, its param_groups, /scheduler) with the config's own rules
//     for the same setting (configs/schema.cpp through find_hyper_schema: lr >= 0, betas in
//     [0, 1), T_max >= 1, ...); values that only a checkpoint holds (last_epoch, base_lrs, best,
//     ...) with rules written here;
//   - counters are integers in range, also when stored as float64; everything is finite where
//     infinity means nothing (a plateau's `best` may be +-inf, never NaN);
//   - required groups and attributes are present and no unknown ones (the expected names come
//     from the live optimizer's and scheduler's state_dict(), not from a list kept here);
//     lists have one entry per param group; the param groups hold the model's parameters;
//   - the position is consistent: global_step == epoch * steps_per_epoch + the steps of
//     batch_in_epoch (steps = ceil(batches / accumulate_steps); checkpoints fall on steps),
//     batch_in_epoch <= batches_per_epoch, the scheduler's last_epoch equals the steps or epochs
//     it was stepped by, the logging window fits the steps done;
//   - /rng streams are named after devices and hold a generator state (16 bytes).
// A failure throws CheckpointError naming the file, the group and attribute, the value, what is
// accepted and what to do. A resume that can run but not exactly (no /rng) is reported as a
// warning line instead (README "Resuming").
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "configs/config.h"
#include "engine/optim/optimizer.h"
#include "engine/sched/scheduler.h"
#include "cli/run/checkpointing.h"
#include "exporters/checkpoint.h"

namespace dl::train {

// The run the checkpoint is restored into (built from the resuming config, not yet restored).
struct RestoreTarget {
  const Config& cfg;
  const optim::Optimizer& optimizer;
  const sched::LRScheduler* scheduler;  // nullptr when the config has none
  bool scheduler_per_step;              // stepped after every optimizer step (else per epoch)
  int64_t batches_per_epoch;            // of the training loader
  int64_t accumulate_steps = 1;         // batches per optimizer step (train.accumulate_steps)
  // The checkpoint's run had another number of ranks (--allow-world-size-change): its position
  // counts other batches, so it is not checked against this run's batches per epoch.
  bool world_size_changed = false;
};

struct RestoredState {
  TrainerPosition position;           // /trainer, validated
  std::vector<std::string> warnings;  // one line each: why the resume will not be exact
};

RestoredState check_restored_state(const Checkpoint& c, const std::string& path, const RestoreTarget& target);

}  // namespace dl::train
