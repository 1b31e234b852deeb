// Module: a node of the model tree holding parameters, buffers and child modules under
// PyTorch-compatible dotted names (what checkpoints, optimizers and the graph builder use).
//
//   auto net = std::make_shared<nn::Sequential>();
//   net->push_back(std::make_shared<nn::Linear>(784, 512));   // children "0", "1", ...
//   net->push_back(std::make_shared<nn::ReLU>());
//   Tensor y = net->forward(x);
//   for (auto& [name, t] : net->state_dict()) ...             // "0.weight", "0.bias"
//
// Names and order follow torch.nn.Module: a module's own parameters (registration order), then
// its own persistent buffers, then each child recursively with "<child>." prefixed.
// Modules are held by std::shared_ptr; a subclass keeps its tensors as members too (e.g.
// Linear::weight) — they are handles to the same TensorImpl as the registry entries.
//
// Devices and dtypes: to(Device) / to(DType) convert parameters and buffers IN PLACE, keeping
// each Tensor's identity (the TensorImpl is re-pointed at the new storage), so members, the
// registry and an optimizer built before the move all see the moved tensors. Optimizer state
// already created (momentum buffers, ...) is not moved: build the optimizer after to(), or
// restore its state with Optimizer::load_state_dict (which places slots on each param's device).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/autograd/autograd.h"
#include "engine/ops/random.h"
#include "engine/tensor/tensor.h"

namespace dl::nn {

// Ordered (key, tensor) list. In a state_dict the tensors alias the live ones.
using StateDict = std::vector<std::pair<std::string, Tensor>>;
using NamedTensors = StateDict;

// Finds `key` in a StateDict; returns nullptr when absent.
const Tensor* find_tensor(const StateDict& sd, const std::string& key);
// The result points into `sd`: a temporary list would leave it dangling.
const Tensor* find_tensor(StateDict&& sd, const std::string& key) = delete;

struct LoadResult {
  std::vector<std::string> missing_keys;     // in the model, not in the state_dict
  std::vector<std::string> unexpected_keys;  // in the state_dict, not in the model
};

// A (height, width) size that also accepts a single int, like PyTorch's `kernel_size=3`.
struct Size2 {
  int64_t h = 0, w = 0;
  Size2(int64_t v) : h(v), w(v) {}  // NOLINT: implicit on purpose (Conv2d(1, 6, 5))
  Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  std::array<int64_t, 2> pair() const { return {h, w}; }
  bool operator==(const Size2& o) const { return h == o.h && w == o.w; }
  // "3" when square, else "(3, 5)" — the way PyTorch prints what the user gave.
  std::string str() const;
  std::string tuple_str() const;  // always "(3, 3)"
};

class Module : public std::enable_shared_from_this<Module> {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- forward ----
  // Single-input forward. The default throws (containers driven by the graph builder).
  virtual Tensor forward(const Tensor& x);
  // Multi-input forward (graph nodes with several inputs: Add, Concat). The default accepts
  // exactly one input and calls forward(xs[0]).
  virtual Tensor forward(const TensorList& xs);
  // Tuple-valued forward (graph nodes whose value is a tuple, e.g. an LSTM's
  // {output, h_n, c_n}): element 0 is what forward() returns. The default returns {forward(xs)}.
  virtual TensorList forward_tuple(const TensorList& xs);
  Tensor operator()(const Tensor& x) { return forward(x); }
  Tensor operator()(const TensorList& xs) { return forward(xs); }

  // ---- identity / printing ----
  virtual std::string type_name() const { return "Module"; }
  // The part inside the parentheses of PyTorch's repr: "in_features=4, out_features=3, bias=True".
  virtual std::string extra_repr() const { return ""; }
  // PyTorch-style multi-line repr of the tree.
  std::string repr() const;

  // ---- mode ----
  // Sets training mode on this module and every descendant.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // ---- registration (names must be non-empty, without '.', unique within the module) ----
  // Registers a parameter and marks it requires_grad (it must be a floating leaf tensor).
  Tensor register_parameter(const std::string& name, Tensor t);
  // Buffers: state that is not trained (running stats). Non-persistent buffers are left out
  // of state_dict (PyTorch's persistent=False).
  Tensor register_buffer(const std::string& name, Tensor t, bool persistent = true);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

  // ---- traversal (dotted names, registration order) ----
  // Parameters that appear under several names (shared weights) are listed once, like PyTorch.
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;  // persistent and not
  std::vector<Tensor> buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  std::vector<std::shared_ptr<Module>> children() const;
  // This module ("") and every descendant, pre-order.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules();
  // Direct child by name, or nullptr.
  std::shared_ptr<Module> child(const std::string& name) const;
  // Total number of parameter elements (shared parameters counted once).
  int64_t num_parameters(bool trainable_only = false) const;

  // ---- checkpoints ----
  StateDict state_dict() const;
  // Copies values in place (no grad). Any shape mismatch throws (even when !strict);
  // strict mode also throws on missing/unexpected keys. All problems are reported in one
  // message, PyTorch's format:
  //   Error(s) in loading state_dict for Sequential:
  //       Missing key(s) in state_dict: "0.bias".
  //       size mismatch for 1.weight: copying a param with shape [10, 84] from checkpoint,
  //       the shape in current model is [10, 120].
  // dtypes are converted (f64 checkpoint into an f32 model, etc.) and devices too.
  LoadResult load_state_dict(const StateDict& sd, bool strict = true);

  // ---- devices, dtypes, grads ----
  void to(Device d);  // in place, see the header comment
  void to(DType t);   // floating parameters/buffers only (num_batches_tracked stays i64)
  void zero_grad(bool set_to_none = true);

 protected:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  const std::vector<std::pair<std::string, Tensor>>& own_parameters() const { return params_; }
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& own_children() const {
    return children_;
  }
  bool training_ = true;

 private:
  struct Buffer {
    std::string name;
    Tensor tensor;
    bool persistent = true;
  };
  void check_new_name(const std::string& name, const char* what) const;
  void collect_state(const std::string& prefix, StateDict& out) const;
  void collect_params(const std::string& prefix, NamedTensors& out, bool recurse,
                      std::vector<const TensorImpl*>& seen) const;
  void collect_buffers(const std::string& prefix, NamedTensors& out, bool recurse) const;
  void collect_modules(const std::string& prefix,
                       std::vector<std::pair<std::string, std::shared_ptr<Module>>>& out);
  void repr_into(std::string& out, int indent) const;

  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<Buffer> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

using ModulePtr = std::shared_ptr<Module>;

// Python's repr of a float ("0.1", "1e-05", "1.0"), for extra_repr strings.
std::string py_float(double v);
inline const char* py_bool(bool b) { return b ? "True" : "False"; }

}  // namespace dl::nn
