// Graph-level fusions that GraphModel::run applies when it evaluates a model.
//
// batch norm -> ReLU: a BatchNorm node whose value exactly one node reads, a ReLU, runs with it
// as one op (nn::BatchNormBase::forward_relu, ops batch_norm_relu): one pass over memory less
// forward and backward and one saved tensor less, with bit-identical results. Only the
// evaluation changes: the modules, state_dict keys, summary, `dltool bench`'s per-node times and
// the ONNX export are those of the two nodes, and run() evaluates the batch norm node on its
// own when its value is asked for (forward_nodes).
#pragma once
#include <vector>

#include "engine/graph/model.h"

namespace dl {

// Per node: the index of the ReLU node to run fused with it (a batch norm node), or -1.
// `output` (the model's output) counts as a reader.
std::vector<int> plan_bn_relu_fusion(const std::vector<GraphModel::NodeRef>& nodes, ValueRef output);

// Runs batch norm node `bn` fused with its ReLU on the batch norm's input: the ReLU's value.
Tensor run_bn_relu(const GraphModel::NodeRef& bn, const Tensor& x);

}  // namespace dl
