// Data-parallel training of one model replicated on every rank (torch's
// DistributedDataParallel), on top of the engine's training step:
//
//   ProcessGroupPtr pg = init_process_group("auto", detect_env());
//   train::TrainStep step(*optimizer, step_options);
//   auto reducer = dist::attach_data_parallel(*model, step, pg, {.reducer = {.bucket_cap_mb = 25}});
//   for (batch : this rank's shard) step.run(...);   // gradients averaged over ranks per update
//
// attach_data_parallel broadcasts rank `root`'s parameters and buffers to every rank (the
// replicas start equal), builds a Reducer over the model's trainable parameters and hooks it
// into the step: before each backward prepare_for_backward(will_update) (no all-reduce inside
// an accumulation window, like DDP's no_sync), before each update finalize() (the averaged
// gradients are what clipping and the optimizer see). With broadcast_buffers, rank `root`'s
// buffers (BatchNorm running statistics) are copied to every rank after each update, so the
// replicas stay equal (PyTorch does it before each forward; once per update costs less and
// gives the same state at every update). The step's hooks own the reducer.
#pragma once
#include <memory>
#include <vector>

#include "engine/dist/process_group.h"
#include "engine/dist/reducer.h"
#include "engine/nn/module.h"
#include "engine/train/step.h"

namespace dl::dist {

// `root`'s values of `tensors` into every rank's, in place, in list order (every rank passes
// the same list: same shapes and dtypes).
void broadcast_tensors(ProcessGroup& pg, const std::vector<Tensor>& tensors, int root);
// Every parameter, then every buffer of `module` (model order) from rank `root`.
void broadcast_parameters(ProcessGroup& pg, nn::Module& module, int root);

struct DataParallelOptions {
  ReducerOptions reducer;
  bool broadcast_parameters = true;  // rank root's initial parameters and buffers to every rank
  bool broadcast_buffers = true;     // rank root's buffers to every rank after each update
  int root = 0;
};

std::shared_ptr<Reducer> attach_data_parallel(nn::Module& module, train::TrainStep& step, ProcessGroupPtr pg,
                                              DataParallelOptions options = {});

}  // namespace dl::dist
