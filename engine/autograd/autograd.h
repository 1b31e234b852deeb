// Define-by-run autograd.
//
// Every differentiable op records a Node holding its backward function and one Edge per input
// (the input's own grad_fn, or the AccumulateGrad node of a leaf). Tensor::backward() walks the
// nodes reachable from the root in a fixed order (reverse creation order among ready nodes), so
// results are deterministic. Backward functions are written with engine ops and therefore run
// on every device. They run with grad mode off (no double backward).
//
// Writing an op's derivative:
//
//   Tensor out = ...forward...;
//   if (any_requires_grad({a, b}))
//     record("MulBackward", out, {a, b},
//            [a = a.detach(), b = b.detach()](const Tensor& g) -> TensorList {
//              return {g * b, g * a};   // undefined Tensor() = no grad for that input
//            });
//
// Capture only detached tensors (x.detach()): capturing the op's own output un-detached makes a
// reference cycle and leaks the graph.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl {

using TensorList = std::vector<Tensor>;

struct Edge {
  std::shared_ptr<Node> node;
  uint32_t input_nr = 0;
  bool valid() const { return node != nullptr; }
};

struct Node {
  explicit Node(std::string name);
  virtual ~Node() = default;
  // grads: one per output of the node (undefined where no gradient flowed).
  // Returns one gradient per next_edges entry (undefined = none).
  virtual TensorList apply(TensorList&& grads) = 0;

  std::string name;
  std::vector<Edge> next_edges;
  uint64_t sequence_nr;   // creation order; later nodes run first among ready ones
  uint32_t num_outputs = 1;
};

// Backward of a single-output op.
using BackwardFn = std::function<TensorList(const Tensor& grad_output)>;
// Backward of a multi-output op (grads has one entry per output; some may be undefined).
using MultiBackwardFn = std::function<TensorList(const TensorList& grad_outputs)>;

bool grad_mode_enabled();
// RAII: disables recording (like torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
 private:
  bool prev_;
};
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;
 private:
  bool prev_;
};

// True when grad mode is on and any defined input requires grad.
bool any_requires_grad(std::initializer_list<Tensor> inputs);
bool any_requires_grad(const TensorList& inputs);

// Attaches a backward node to `out` (sets out.requires_grad). No-op when grad mode is off or
// no input requires grad.
void record(const char* name, Tensor& out, const TensorList& inputs, BackwardFn fn);
void record_multi(const char* name, TensorList& outs, const TensorList& inputs, MultiBackwardFn fn);

// Edge that gradients of `t` flow into (its grad_fn, or the leaf's AccumulateGrad).
Edge gradient_edge(const Tensor& t);

// Runs backward from `roots` with `grads` (same shapes). Accumulates into leaves' .grad().
void run_backward(const TensorList& roots, const TensorList& grads);

// Post-accumulate-grad hooks (torch's Tensor.register_post_accumulate_grad_hook): `hook(leaf)`
// runs once per backward for every leaf that received a gradient in it, right after that
// gradient was accumulated into leaf.grad() (so .grad() is complete: every path through the
// graph has contributed), in backward order. Leaves that got no gradient in a backward are not
// called. This is where data-parallel training starts a gradient's all-reduce during backward.
// Hooks run with grad mode off, in registration order; the hook gets the leaf as its argument,
// so it must not capture the leaf (a captured leaf owns its hook: a cycle that never frees).
// Throws std::invalid_argument for a tensor that is not a leaf requiring grad.
class GradHookHandle {
 public:
  GradHookHandle() = default;
  GradHookHandle(std::weak_ptr<Node> node, uint64_t id) : node_(std::move(node)), id_(id) {}
  // Unregisters the hook (no-op when already removed or the leaf is gone).
  void remove();
 private:
  std::weak_ptr<Node> node_;
  uint64_t id_ = 0;
};
using PostAccumulateGradHook = std::function<void(const Tensor& leaf)>;
GradHookHandle register_post_accumulate_grad_hook(const Tensor& leaf, PostAccumulateGradHook hook);

// Reduces a broadcast gradient back to `shape` (sums over broadcast dims).
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace dl
