#include "engine/graph/memory_estimate.h"

#include <algorithm>

#include "engine/graph/layer_schema.h"
#include "engine/tensor/storage.h"

namespace dl {
namespace {

// Elements of a shape as a double: estimates never overflow (the shape pass has already
// refused shapes whose element count overflows int64).
double elements(const Shape& s) {
  double n = 1;
  for (int64_t d : s) n *= static_cast<double>(d);
  return n;
}

// Tensors of the output's size a training step allocates per layer (the layer type's
// registration says; one for an unknown type).
double saved_copies(const std::string& type) {
  const LayerSchema* s = find_layer_schema(type);
  return s ? s->saved_copies : 1;
}

}  // namespace

MemoryEstimate estimate_training_memory(const std::vector<NodeSummary>& nodes, const Shape& sample_shape,
                                        const MemoryEstimateOptions& o) {
  MemoryEstimate e;
  e.batch_size = o.batch_size;
  e.eval_batch_size = o.eval_batch_size;
  const double elem = static_cast<double>(o.element_size);
  const double batch = static_cast<double>(o.batch_size);
  double train_act = batch * elements(sample_shape) * elem;  // the input batch
  double largest = 0, second = 0;                           // per-sample output elements
  for (const NodeSummary& n : nodes) {
    double params = 0, buffers = 0;
    for (const auto& p : n.params) params += elements(p.second);
    for (const auto& b : n.buffers) buffers += elements(b.second);
    const double out = elements(n.output_shape);
    const double act = batch * out * elem * saved_copies(n.type);
    e.num_params += n.num_params;
    e.weights += (params + buffers) * elem;
    e.gradients += params * elem;
    e.optimizer_state += params * elem * o.optimizer_slots;
    train_act += act;
    if (out > largest) {
      second = largest;
      largest = out;
    } else if (out > second) {
      second = out;
    }
    e.layers.push_back({n.name, n.type, params * elem * (2 + o.optimizer_slots) + buffers * elem + act});
  }
  train_act += 2 * batch * largest * elem;  // gradients alive at once during backward
  const double eval_act = static_cast<double>(o.eval_batch_size) * (elements(sample_shape) + largest + second) * elem;
  e.activations = std::max(train_act, eval_act);
  e.eval_activations = eval_act > train_act;
  std::stable_sort(e.layers.begin(), e.layers.end(),
                   [](const LayerMemory& a, const LayerMemory& b) { return a.bytes > b.bytes; });
  return e;
}

std::string describe_parts(const MemoryEstimate& e) {
  return "weights " + format_bytes(e.weights) + ", gradients " + format_bytes(e.gradients) + ", optimizer state " +
         format_bytes(e.optimizer_state) + ", activations " + format_bytes(e.activations) +
         (e.eval_activations ? " (evaluation at batch size " + std::to_string(e.eval_batch_size)
                             : " (training at batch size " + std::to_string(e.batch_size)) +
         ")";
}

}  // namespace dl
