// The training loop's side of data-parallel training (engine/dist does the collectives and the
// gradient reducer): starting the process group from the launcher's environment, what the
// ranks must agree on (stop signals, logged losses, checkpoint writes), and every rank's
// loader and RNG state for rank 0's checkpoints. Trainer's data-parallel setup
// (setup_data_parallel_model, check_world_size) is defined in data_parallel.cpp too.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "configs/config.h"
#include "datasets/dataloader.h"
#include "engine/dist/process_group.h"
#include "engine/dist/reducer.h"
#include "engine/nn/module.h"
#include "engine/train/step.h"

namespace dl::train {

// The process group of a data-parallel launch (mpirun, srun, RANK/WORLD_SIZE), or null for a
// single process. MPI's threads start with the stop signals blocked (signals.h), so SIGUSR1
// and SIGTERM reach the training loop's thread.
dist::ProcessGroupPtr init_data_parallel(const Config& cfg, const dist::DistEnv& env);

// Attaches the gradient reducer (bucketed allreduce during backward, average before the
// update) and broadcasts rank 0's parameters and buffers. The returned object keeps it alive.
std::shared_ptr<dist::Reducer> attach_ddp(const dist::ProcessGroupPtr& group, nn::Module& model, TrainStep& step,
                                 double bucket_cap_mb);

// A stream that discards everything (the progress output of ranks other than 0).
std::ostream& null_stream();

// The mean of `v` over the ranks.
double mean_over_ranks(dist::ProcessGroup& g, double v);
// The stop signal the ranks act on: the largest one any rank has received (0 = none), so
// every rank stops after the same step even when the launcher signalled only some of them.
int agreed_signal(dist::ProcessGroup& g, int local_signal);
// Runs `write` on rank 0 (a checkpoint write) and tells every rank how it went: when it throws,
// rank 0 rethrows it and every other rank throws std::runtime_error with its message, so no rank
// waits in the next collective for a rank that has stopped.
void rank0_then_share(dist::ProcessGroup& g, const std::function<void()>& write);

// What a checkpoint keeps of each rank.
struct RankState {
  data::LoaderState loader;
  std::map<std::string, std::vector<uint8_t>> rng;  // capture_rng()
};
// Every rank's state, rank r's at index r (a collective).
std::vector<RankState> gather_rank_states(dist::ProcessGroup& g, const RankState& mine);

}  // namespace dl::train
