#include "engine/graph/fuse.h"

#include "engine/nn/activation.h"
#include "engine/nn/norm.h"

namespace dl {

std::vector<int> plan_bn_relu_fusion(const std::vector<GraphModel::NodeRef>& nodes, ValueRef output) {
  const int count = static_cast<int>(nodes.size());
  // Readers of each node's value (element 0; a batch norm has no other), and the last one.
  std::vector<int> readers(nodes.size(), 0), reader(nodes.size(), -1);
  for (int j = 0; j < count; ++j)
    for (ValueRef v : nodes[j].inputs)
      if (v.node >= 0) {
        ++readers[v.node];
        reader[v.node] = j;
      }
  if (output.node >= 0) ++readers[output.node];
  std::vector<int> fuse(nodes.size(), -1);
  for (int i = 0; i < count; ++i) {
    const int j = reader[i];
    if (readers[i] != 1 || j < 0 || nodes[i].inputs.size() != 1 || nodes[j].inputs.size() != 1) continue;
    if (dynamic_cast<const nn::BatchNormBase*>(nodes[i].module.get()) &&
        dynamic_cast<const nn::ReLU*>(nodes[j].module.get()))
      fuse[i] = j;
  }
  return fuse;
}

Tensor run_bn_relu(const GraphModel::NodeRef& bn, const Tensor& x) {
  return static_cast<nn::BatchNormBase&>(*bn.module).forward_relu(x);
}

}  // namespace dl
