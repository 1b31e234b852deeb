#include "engine/graph/onnx_emit.h"

#include "engine/ops.h"

namespace dl {

int64_t OnnxLayer::axis(int64_t dim) const {
  const int64_t r = rank();
  const int64_t n = dim < 0 ? dim + r : dim;
  if (n < 0 || n >= r) refuse("dim " + std::to_string(dim) + " is out of range for rank " + std::to_string(r));
  return n;
}

void OnnxLayer::refuse(const std::string& why) const {
  throw OnnxUnmappable("cannot export node '" + spec.name + "' (type " + spec.type + ") at ONNX opset " +
                       std::to_string(opset) + ": " + why);
}

std::string OnnxGraph::weight(const OnnxLayer& io, const std::string& key) {
  for (const auto& [k, t] : io.module.state_dict())
    if (k == key) return initializer(io.spec.name + "." + key, t.detach().to(DType::F32).cpu().contiguous());
  throw std::logic_error("ONNX export: node '" + io.spec.name + "' has no tensor '" + key + "'");
}

std::string OnnxGraph::floats(const std::string& name, const std::vector<float>& v, const Shape& shape) {
  return initializer(name, from_vector(v, shape));
}

std::string OnnxGraph::ints(const std::string& name, const std::vector<int64_t>& v) {
  return initializer(name, from_vector(v, {static_cast<int64_t>(v.size())}));
}

std::string OnnxGraph::scalar(const std::string& name, float v) { return floats(name, {v}, {}); }

}  // namespace dl
