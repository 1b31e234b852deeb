#include "engine/autograd/autograd.h"

#include <atomic>
#include <queue>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"

namespace dl {
namespace {

thread_local bool t_grad_enabled = true;
std::atomic<uint64_t> g_sequence{0};

class LambdaNode final : public Node {
 public:
  LambdaNode(const char* name, BackwardFn fn) : Node(name), fn_(std::move(fn)) {}
  TensorList apply(TensorList&& grads) override {
    if (!grads[0].defined()) return TensorList(next_edges.size());
    return fn_(grads[0]);
  }
 private:
  BackwardFn fn_;
};

class MultiLambdaNode final : public Node {
 public:
  MultiLambdaNode(const char* name, MultiBackwardFn fn) : Node(name), fn_(std::move(fn)) {}
  TensorList apply(TensorList&& grads) override { return fn_(grads); }
 private:
  MultiBackwardFn fn_;
};

// Sink of a leaf: adds incoming gradients into the leaf's .grad(), then runs the leaf's
// post-accumulate-grad hooks. The engine runs it once per backward with the sum of every
// path's gradient, so the hooks see the complete .grad().
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf)
      : Node("AccumulateGrad"), leaf_(leaf) {}
  TensorList apply(TensorList&& grads) override {
    auto leaf = leaf_.lock();
    if (!leaf || !grads[0].defined()) return {};
    Tensor g = grads[0];
    if (!leaf->grad) {
      // Own the gradient buffer: the incoming tensor may alias another tensor's storage.
      leaf->grad = g.clone().impl_ptr();
    } else {
      Tensor acc(leaf->grad);
      add_(acc, g);
    }
    // By index: a hook may register or remove hooks of this leaf.
    const Tensor t(leaf);
    for (size_t i = 0; i < hooks.size(); ++i) {
      PostAccumulateGradHook h = hooks[i].second;
      h(t);
    }
    return {};
  }
  std::vector<std::pair<uint64_t, PostAccumulateGradHook>> hooks;  // (id, hook), registration order
 private:
  std::weak_ptr<TensorImpl> leaf_;
};

std::atomic<uint64_t> g_hook_id{1};

}  // namespace

Node::Node(std::string n) : name(std::move(n)), sequence_nr(g_sequence++) {}

bool grad_mode_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }
EnableGradGuard::EnableGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = true; }
EnableGradGuard::~EnableGradGuard() { t_grad_enabled = prev_; }

bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool any_requires_grad(const TensorList& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  TensorImpl* impl = t.impl();
  if (impl->grad_fn) return {impl->grad_fn, impl->output_nr};
  if (!impl->grad_accumulator)
    impl->grad_accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
  return {impl->grad_accumulator, 0};
}

GradHookHandle register_post_accumulate_grad_hook(const Tensor& leaf, PostAccumulateGradHook hook) {
  if (!leaf.defined() || !leaf.requires_grad() || !leaf.is_leaf())
    throw std::invalid_argument("register_post_accumulate_grad_hook: expected a leaf tensor that requires grad" +
                                std::string(leaf.defined() && !leaf.is_leaf() ? " (got a non-leaf tensor)" : ""));
  if (!hook) throw std::invalid_argument("register_post_accumulate_grad_hook: empty hook");
  auto node = std::static_pointer_cast<AccumulateGrad>(gradient_edge(leaf).node);
  const uint64_t id = g_hook_id++;
  node->hooks.emplace_back(id, std::move(hook));
  return GradHookHandle(node, id);
}

void GradHookHandle::remove() {
  auto node = std::static_pointer_cast<AccumulateGrad>(node_.lock());
  if (!node) return;
  std::erase_if(node->hooks, [&](const auto& h) { return h.first == id_; });
  node_.reset();
}

static void attach(const std::shared_ptr<Node>& node, TensorList& outs, const TensorList& inputs) {
  node->next_edges.reserve(inputs.size());
  for (const Tensor& in : inputs) node->next_edges.push_back(gradient_edge(in));
  node->num_outputs = static_cast<uint32_t>(outs.size());
  for (uint32_t i = 0; i < outs.size(); ++i) {
    if (!outs[i].defined() || !is_floating(outs[i].dtype())) continue;
    TensorImpl* impl = outs[i].impl();
    impl->grad_fn = node;
    impl->output_nr = i;
    impl->requires_grad = true;
  }
}

void record(const char* name, Tensor& out, const TensorList& inputs, BackwardFn fn) {
  if (!any_requires_grad(inputs)) return;
  auto node = std::make_shared<LambdaNode>(name, std::move(fn));
  TensorList outs{out};
  attach(node, outs, inputs);
}

void record_multi(const char* name, TensorList& outs, const TensorList& inputs, MultiBackwardFn fn) {
  if (!any_requires_grad(inputs)) return;
  auto node = std::make_shared<MultiLambdaNode>(name, std::move(fn));
  attach(node, outs, inputs);
}

void run_backward(const TensorList& roots, const TensorList& grads) {
  if (roots.size() != grads.size()) throw std::invalid_argument("backward: roots/grads size mismatch");
  NoGradGuard no_grad;

  // 1. Dependency counts of every node reachable from the roots.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack;
  std::unordered_set<Node*> seen;
  std::vector<Edge> root_edges;
  for (size_t i = 0; i < roots.size(); ++i) {
    if (roots[i].shape() != grads[i].shape())
      throw std::invalid_argument("backward: gradient shape " + shape_str(grads[i].shape()) +
                                  " does not match output shape " + shape_str(roots[i].shape()));
    Edge e = gradient_edge(roots[i]);
    if (!e.valid()) throw std::invalid_argument("backward: tensor does not require grad");
    root_edges.push_back(e);
    if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges) {
      if (!e.valid()) continue;
      ++deps[e.node.get()];
      if (seen.insert(e.node.get()).second) stack.push_back(e.node.get());
    }
  }

  // 2. Process ready nodes, latest-created first (deterministic order).
  struct Ready {
    std::shared_ptr<Node> node;
    bool operator<(const Ready& o) const { return node->sequence_nr < o.node->sequence_nr; }
  };
  std::priority_queue<Ready> ready;
  std::unordered_map<Node*, TensorList> buffers;
  auto accumulate = [&](const Edge& e, const Tensor& g) {
    TensorList& buf = buffers[e.node.get()];
    if (buf.empty()) buf.resize(e.node->num_outputs);
    Tensor& slot = buf[e.input_nr];
    slot = slot.defined() ? add(slot, g) : g;
  };
  for (size_t i = 0; i < roots.size(); ++i) accumulate(root_edges[i], grads[i]);
  for (const Edge& e : root_edges)
    if (deps[e.node.get()] == 0) {
      bool already = false;
      // avoid pushing the same root twice
      for (const Edge& f : root_edges)
        if (&f == &e) break;
        else if (f.node == e.node) already = true;
      if (!already) ready.push({e.node});
    }

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top().node;
    ready.pop();
    TensorList in = std::move(buffers[node.get()]);
    buffers.erase(node.get());
    if (in.empty()) in.resize(node->num_outputs);
    TensorList out = node->apply(std::move(in));
    if (!out.empty() && out.size() != node->next_edges.size())
      throw std::logic_error("autograd: " + node->name + " returned " + std::to_string(out.size()) +
                             " gradients for " + std::to_string(node->next_edges.size()) + " inputs");
    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      const Edge& e = node->next_edges[i];
      if (!e.valid()) continue;
      if (i < out.size() && out[i].defined()) accumulate(e, out[i]);
      if (--deps[e.node.get()] == 0) ready.push({e.node});
    }
  }
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  int64_t lead = grad.dim() - static_cast<int64_t>(shape.size());
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < grad.dim(); ++i) {
    if (i < lead) dims.push_back(i);
    else if (shape[i - lead] == 1 && grad.size(i) != 1) dims.push_back(i);
  }
  Tensor r = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return r.reshape(shape);
}

}  // namespace dl
