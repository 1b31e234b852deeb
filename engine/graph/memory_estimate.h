// How much memory training a model needs, from its shape pass alone (infer_model_shapes):
// nothing is allocated, so `dltool validate` can print it for a model of any size and the
// trainer can refuse one that cannot fit before it allocates anything.
//
// A deliberately conservative estimate (the real peak is lower; tests keep it within a small
// factor), all in the model's element size (float32: 4 bytes):
//   weights      every parameter and buffer
//   gradients    one per parameter
//   optimizer    `optimizer_slots` tensors per parameter (SGD momentum 1, Adam 2, AMSGrad 3)
//   activations  the larger of
//                - a training step at `batch_size`: the input batch and every node's output,
//                  all kept for backward (views such as flatten and identity excepted); twice
//                  for layers that also keep a mask or indices of the output's size (dropout,
//                  max pooling) or a normalised copy (batch norm);
//                  plus two gradients of the largest output alive at once during backward;
//                - an evaluation at `eval_batch_size` (no grad): the two largest outputs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/graph/model.h"

namespace dl {

struct LayerMemory {
  std::string node;
  std::string type;
  double bytes = 0;  // its weights, gradients, optimizer state and training activations
};

struct MemoryEstimate {
  int64_t num_params = 0;
  int64_t batch_size = 0;
  int64_t eval_batch_size = 0;
  bool eval_activations = false;  // evaluation, not the training step, sets `activations`
  double weights = 0, gradients = 0, optimizer_state = 0, activations = 0;  // bytes
  std::vector<LayerMemory> layers;  // per node, largest first

  double total() const { return weights + gradients + optimizer_state + activations; }
};

struct MemoryEstimateOptions {
  int64_t batch_size = 1;
  int64_t eval_batch_size = 1;
  int optimizer_slots = 0;
  int64_t element_size = 4;
};

MemoryEstimate estimate_training_memory(const std::vector<NodeSummary>& nodes, const Shape& sample_shape,
                                        const MemoryEstimateOptions& options);

// "weights 1.2 MiB, gradients 1.2 MiB, optimizer state 1.2 MiB, activations 3.4 MiB at batch 64"
std::string describe_parts(const MemoryEstimate& e);

}  // namespace dl
