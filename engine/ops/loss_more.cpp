// The rest of torch.nn's losses (PyTorch 1.13 semantics), composed of differentiable engine ops
// in the order PyTorch 1.13 evaluates them, so forward values and gradients (including the
// conventions at kinks: clamp_min passes the gradient at the bound, the margin kernels' z > 0
// does not) follow from autograd and run on every device.
//
// multi_margin_loss's class-index targets become a boolean mask (checked on the host, or on the
// device when checks are deferred); the selected scores x[y] are masked sums (exact), which keeps
// the whole loss one composition instead of a fused kernel per device. multilabel_margin_loss,
// whose targets are variable-length lists, is one fused kernel (kernels/loss.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/amp/autocast.h"
#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss.h"
#include "engine/ops/loss_common.h"
#include "engine/ops/reduce.h"
#include "engine/tensor/host_reads.h"
#include "kernels/loss.h"

namespace dl {

using loss_detail::apply_reduction;
using loss_detail::check_floating;
using loss_detail::check_same_device;

namespace {

// A target that holds numbers (probabilities, counts, +1/-1 labels) in the input's dtype.
Tensor as_input_dtype(const Tensor& target, const Tensor& input, const char* op) {
  check_same_device(input, target, op);
  return target.dtype() == input.dtype() ? target : target.to(input.dtype());
}

Tensor zero_like_scalar(const Tensor& x) { return zeros({}, x.options()); }

// Checks that `a` and `b` broadcast; std::invalid_argument naming the loss and both shapes.
void check_broadcast(const char* op, const Tensor& a, const Tensor& b, const char* what_a, const char* what_b) {
  try {
    (void)broadcast_shapes(a.shape(), b.shape());
  } catch (const std::exception&) {
    throw std::invalid_argument(std::string(op) + ": " + what_a + " shape " + shape_str(a.shape()) + " and " +
                                what_b + " shape " + shape_str(b.shape()) + " do not broadcast");
  }
}

// log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)), finite for every finite x (torch's
// log_sigmoid); the gradient is sigmoid(-x) (1/2 at 0 from minimum's tie rule).
Tensor log_sigmoid(const Tensor& x) {
  const double inf = std::numeric_limits<double>::infinity();
  return sub(minimum(x, zero_like_scalar(x)), softplus(neg(abs(x)), 1.0, inf));
}

// ||x1 - x2 + eps||_p over the last dim (torch.pairwise_distance).
Tensor pairwise_distance(const Tensor& x1, const Tensor& x2, double p, double eps) {
  Tensor d = add(sub(x1, x2), eps);
  const int64_t last = std::max(x1.dim(), x2.dim()) - 1;
  if (p == 2.0) return sqrt(sum(mul(d, d), {last}));
  if (p == 1.0) return sum(abs(d), {last});
  return pow(sum(pow(abs(d), p), {last}), 1.0 / p);
}

// The checked input of a class-index margin loss as one row per sample: [C] -> [1, C], [N, C]
// as it is (a 0-dim input is one sample of one class, like PyTorch).
Tensor as_rows(const char* op, const Tensor& input, const Tensor& target) {
  check_floating(input, op, "input");
  check_same_device(input, target, op);
  const int64_t nd = input.dim();
  if (!((nd == 2 && input.size(1) != 0) || (nd == 1 && input.size(0) != 0) || nd == 0))
    throw std::invalid_argument(std::string(op) + ": expected a non-empty [C] or [N, C] input, got " +
                                shape_str(input.shape()));
  if (nd == 0) return input.reshape({1, 1});
  return nd == 1 ? input.unsqueeze(0) : input;
}

// "Per sample" reductions of the margin losses: None keeps [N] (0-dim for a single sample when
// `single`), Mean / Sum over the samples.
Tensor reduce_rows(const Tensor& per_row, Reduction r, bool single) {
  if (r == Reduction::None) return single ? per_row.reshape({}) : per_row;
  return apply_reduction(per_row, r);
}

// Host copy of a class-index target, checked to be int64.
std::vector<int64_t> host_indices(const Tensor& target, const char* op) {
  if (target.dtype() != DType::I64)
    throw std::invalid_argument(std::string(op) + ": expected target of int64 class indices, got " +
                                dtype_name(target.dtype()));
  return target.contiguous().to_vector<int64_t>();
}

[[noreturn]] void throw_target_range(const char* op, int64_t value, size_t pos, int64_t classes) {
  throw std::out_of_range(std::string(op) + ": target " + std::to_string(value) + " at position " +
                          std::to_string(pos) + " is out of range: class indices must be in [0, " +
                          std::to_string(classes - 1) + "]");
}

// The [N, C] bool mask of each row's target class (targets: N int64 class indices). The
// targets are read and checked on the host, unless checks are deferred (engine/tensor/
// host_reads.h): then they stay on the device, sanitize_class_targets_stub turns a target out
// of range into a row without a class, and the range error waits for the next host read (the
// same message). Deferred, INT64_MIN marks "no class" and is the one value not refused.
Tensor target_class_mask(const char* op, const Tensor& target, int64_t n, int64_t classes, const Device& device) {
  if (!checks_deferred() || n == 0) {
    const std::vector<int64_t> tv = host_indices(target, op);
    std::vector<bool> picks(static_cast<size_t>(n * classes), false);
    for (size_t r = 0; r < tv.size(); ++r) {
      if (tv[r] < 0 || tv[r] >= classes) throw_target_range(op, tv[r], r, classes);
      picks[r * static_cast<size_t>(classes) + static_cast<size_t>(tv[r])] = true;
    }
    return from_vector(picks, {n, classes}, TensorOptions(DType::Bool, device));
  }
  if (target.dtype() != DType::I64)
    throw std::invalid_argument(std::string(op) + ": expected target of int64 class indices, got " +
                                dtype_name(target.dtype()));
  ClassLossArgs a;
  a.n = n;
  a.classes = classes;
  a.ignore_index = std::numeric_limits<int64_t>::min();
  const Tensor t = target.detach().contiguous().reshape({n});
  Tensor safe = empty({n}, t.options()), first_bad = empty({1}, t.options());
  sanitize_class_targets_stub(t.device())(t, a, safe, first_bad);
  defer_check(first_bad, [op, t, classes](int64_t pos) {
    throw_target_range(op, static_cast<int64_t>(t.select(0, pos).item()), static_cast<size_t>(pos), classes);
  });
  return eq(safe.reshape({n, 1}), arange(classes, TensorOptions(DType::I64, device)).reshape({1, classes}));
}

}  // namespace

Tensor poisson_nll_loss(const Tensor& input_in, const Tensor& target_in, bool log_input, bool full, double eps,
                        Reduction reduction) {
  const auto cast = amp::autocast(amp::CastPolicy::F32, input_in, target_in);
  const Tensor &input = cast[0], &target = cast[1];
  const char* op = "poisson_nll_loss";
  check_floating(input, op, "input");
  check_broadcast(op, input, target, "input", "target");
  Tensor t = as_input_dtype(target, input, op);
  Tensor loss = log_input ? sub(exp(input), mul(t, input)) : sub(input, mul(t, log(add(input, eps))));
  if (full) {
    // Stirling's approximation of log(t!), masked where t <= 1 (PyTorch's masked_fill).
    Tensor stirling = add(sub(mul(t, log(t)), t), mul(log(mul(t, 2.0 * std::numbers::pi)), 0.5));
    loss = add(loss, where(le(t, 1.0), zero_like_scalar(stirling), stirling));
  }
  return apply_reduction(loss, reduction);
}

Tensor kl_div(const Tensor& input_in, const Tensor& target_in, const std::string& reduction, bool log_target) {
  const auto cast = amp::autocast(amp::CastPolicy::F32, input_in, target_in);
  const Tensor &input = cast[0], &target = cast[1];
  const char* op = "kl_div";
  const bool batchmean = reduction == "batchmean";
  if (!batchmean && reduction != "none" && reduction != "mean" && reduction != "sum")
    throw std::invalid_argument("kl_div: invalid reduction '" + reduction +
                                "': expected one of 'none', 'batchmean', 'sum', 'mean'");
  check_floating(input, op, "input");
  check_broadcast(op, input, target, "input", "target");
  Tensor t = as_input_dtype(target, input, op);
  Tensor loss;
  if (log_target) {
    loss = mul(exp(t), sub(t, input));
  } else {
    // xlogy(t, t) - t x, with xlogy(0, y) = 0.
    Tensor xlogy = where(eq(t, 0.0), zero_like_scalar(t), mul(t, log(t)));
    loss = sub(xlogy, mul(t, input));
  }
  if (!batchmean) return apply_reduction(loss, parse_reduction(reduction));
  Tensor total = sum(loss);
  return input.dim() == 0 ? total : div(total, scalar_tensor(static_cast<double>(input.size(0)), total.options()));
}

Tensor margin_ranking_loss(const Tensor& input1_in, const Tensor& input2_in, const Tensor& target_in, double margin,
                           Reduction reduction) {
  const auto cast = amp::autocast(amp::CastPolicy::F32, input1_in, input2_in, target_in);
  const Tensor &input1 = cast[0], &input2 = cast[1], &target = cast[2];
  const char* op = "margin_ranking_loss";
  check_floating(input1, op, "input1");
  if (input1.dim() != input2.dim() || input1.dim() != target.dim())
    throw std::invalid_argument(std::string(op) +
                                ": all input tensors should have the same number of dims, got input1 " +
                                shape_str(input1.shape()) + ", input2 " + shape_str(input2.shape()) + ", target " +
                                shape_str(target.shape()));
  check_broadcast(op, input1, input2, "input1", "input2");
  check_broadcast(op, input1, target, "input1", "target");
  Tensor t = as_input_dtype(target, input1, op);
  return apply_reduction(clamp(add(mul(neg(t), sub(input1, input2)), margin), 0.0, std::nullopt), reduction);
}

Tensor hinge_embedding_loss(const Tensor& input_in, const Tensor& target_in, double margin, Reduction reduction) {
  const auto cast = amp::autocast(amp::CastPolicy::F32, input_in, target_in);
  const Tensor &input = cast[0], &target = cast[1];
  const char* op = "hinge_embedding_loss";
  check_floating(input, op, "input");
  check_broadcast(op, input, target, "input", "target");
  check_same_device(input, target, op);
  Tensor z = zero_like_scalar(input);
  Tensor t = target.detach();
  Tensor margin_part = where(ne(t, 1.0), clamp(add(neg(input), margin), 0.0, std::nullopt), z);
  Tensor self_part = where(ne(t, -1.0), input, z);
  return apply_reduction(add(margin_part, self_part), reduction);
}

Tensor multilabel_margin_loss(const Tensor& input_in, const Tensor& target_in, Reduction reduction) {
  const auto cast = amp::autocast(amp::CastPolicy::F32, input_in, target_in);
  const Tensor &input = cast[0], &target = cast[1];
  const char* op = "multilabel_margin_loss";
  Tensor x = as_rows(op, input, target);  // [N, C]
  const int64_t n = x.size(0), classes = x.size(1);
  const bool target_ok = input.dim() <= 1 ? target.dim() <= 1 && target.numel() == classes
                                          : target.dim() == 2 && target.size(0) == n && target.size(1) == classes;
  if (!target_ok)
    throw std::invalid_argument(std::string(op) + ": target shape " + shape_str(target.shape()) +
                                " does not match the input shape " + shape_str(input.shape()));
  if (target.dtype() != DType::I64)
    throw std::invalid_argument(std::string(op) + ": expected target of int64 class indices, got " +
                                dtype_name(target.dtype()));
  // Each row's target classes run up to its first negative entry (later entries are not read);
  // one fused kernel (kernels/loss.h) computes the per-row losses without reading the targets
  // back. A target >= C is refused when the verdict is read: at once, or at the next host read
  // when checks are deferred (the training loop on a GPU).
  const Tensor xd = x.detach().contiguous();
  const Tensor t = target.detach().contiguous().reshape({n, classes});
  Tensor per_row = empty({n}, x.options());
  Tensor is_target = empty({n, classes}, TensorOptions(DType::U8, x.device()));
  Tensor first_bad = empty({1}, t.options());
  multilabel_margin_stub(x.device())(xd, t, per_row, is_target, first_bad);
  auto raise = [op, t, classes](int64_t pos) {
    throw_target_range(op, static_cast<int64_t>(t.reshape({-1}).select(0, pos).item()), static_cast<size_t>(pos),
                       classes);
  };
  if (checks_deferred()) {
    defer_check(first_bad, raise);
  } else if (const auto bad = static_cast<int64_t>(first_bad.item()); bad >= 0) {
    raise(bad);
  }
  if (any_requires_grad({x})) {
    record("MultilabelMarginLossBackward", per_row, {x}, [xd, t, is_target](const Tensor& g) -> TensorList {
      Tensor gx = empty(xd.shape(), xd.options());
      multilabel_margin_backward_stub(gx.device())(g.contiguous(), xd, t, is_target, gx);
      return {gx};
    });
  }
  return reduce_rows(per_row, reduction, target.dim() <= 1);
}

Tensor soft_margin_loss(const Tensor& input_in, const Tensor& target_in, Reduction reduction) {
  const auto cast = amp::autocast(amp::CastPolicy::F32, input_in, target_in);
  const Tensor &input = cast[0], &target = cast[1];
  const char* op = "soft_margin_loss";
  check_floating(input, op, "input");
  check_broadcast(op, input, target, "input", "target");
  // log1p(exp(-x t)) exactly as PyTorch evaluates it (no softplus threshold). PyTorch has no
  // derivative for the target: it gets none here either.
  Tensor t = as_input_dtype(target, input, op).detach();
  return apply_reduction(softplus(neg(mul(input, t)), 1.0, std::numeric_limits<double>::infinity()), reduction);
}

Tensor multilabel_soft_margin_loss(const Tensor& input_in, const Tensor& target_in, const Tensor& weight_in,
                                   Reduction reduction) {
  const auto cast = amp::autocast(amp::CastPolicy::F32, input_in, target_in, weight_in);
  const Tensor &input = cast[0], &target = cast[1], &weight = cast[2];
  const char* op = "multilabel_soft_margin_loss";
  check_floating(input, op, "input");
  if (input.dim() < 1)
    throw std::invalid_argument(std::string(op) + ": expected an input of shape [C] or [N, C], got " +
                                shape_str(input.shape()));
  check_broadcast(op, input, target, "input", "target");
  check_same_device(input, weight, op);
  Tensor t = as_input_dtype(target, input, op);
  Tensor loss = neg(add(mul(t, log_sigmoid(input)), mul(add(neg(t), 1.0), log_sigmoid(neg(input)))));
  if (weight.defined()) {
    check_broadcast(op, loss, weight, "input", "weight");
    loss = mul(loss, weight.detach().to(input.dtype()));
  }
  const int64_t class_dim = input.dim() - 1;
  const double classes = static_cast<double>(input.size(class_dim));
  Tensor per_row = div(sum(loss, {class_dim}), scalar_tensor(classes, loss.options()));
  return apply_reduction(per_row, reduction);
}

Tensor cosine_embedding_loss(const Tensor& input1_in, const Tensor& input2_in, const Tensor& target_in, double margin,
                             Reduction reduction) {
  const auto cast = amp::autocast(amp::CastPolicy::F32, input1_in, input2_in, target_in);
  const Tensor &input1 = cast[0], &input2 = cast[1], &target = cast[2];
  const char* op = "cosine_embedding_loss";
  check_floating(input1, op, "input1");
  check_same_device(input1, input2, op);
  check_same_device(input1, target, op);
  const int64_t td = target.dim();
  if (td > 1)
    throw std::invalid_argument(std::string(op) +
                                ": expected a 0-dim or 1-dim target (multi-target not supported), got " +
                                shape_str(target.shape()));
  if (input1.dim() != td + 1 || input2.dim() != td + 1)
    throw std::invalid_argument(std::string(op) + ": a " + std::to_string(td) + "-dim target expects " +
                                std::to_string(td + 1) + "-dim inputs, got " + shape_str(input1.shape()) + " and " +
                                shape_str(input2.shape()));
  check_broadcast(op, input1, input2, "input1", "input2");
  constexpr double kEps = 1e-12f;  // PyTorch's EPSILON, a float constant
  Tensor prod = sum(mul(input1, input2), {td});
  Tensor mag1 = add(sum(mul(input1, input1), {td}), kEps);
  Tensor mag2 = add(sum(mul(input2, input2), {td}), kEps);
  Tensor cos = div(prod, sqrt(mul(mag1, mag2)));
  check_broadcast(op, cos, target, "input", "target");
  Tensor t = target.detach();
  Tensor z = zero_like_scalar(cos);
  Tensor pos = where(eq(t, 1.0), add(neg(cos), 1.0), z);
  Tensor negative = where(eq(t, -1.0), clamp(add(cos, -margin), 0.0, std::nullopt), z);
  return apply_reduction(add(pos, negative), reduction);
}

Tensor multi_margin_loss(const Tensor& input_in, const Tensor& target_in, int64_t p, double margin, const Tensor& weight_in,
                         Reduction reduction) {
  const auto cast = amp::autocast(amp::CastPolicy::F32, input_in, target_in, weight_in);
  const Tensor &input = cast[0], &target = cast[1], &weight = cast[2];
  const char* op = "multi_margin_loss";
  if (p != 1 && p != 2)
    throw std::invalid_argument(std::string(op) + ": only p == 1 and p == 2 supported, got p = " + std::to_string(p));
  check_same_device(input, weight, op);
  Tensor x = as_rows(op, input, target);  // [N, C]
  const int64_t n = x.size(0), classes = x.size(1);
  if (target.dim() > 1 || target.numel() != n)
    throw std::invalid_argument(std::string(op) + ": inconsistent target size " + shape_str(target.shape()) +
                                " for input " + shape_str(input.shape()) + ", expected " + std::to_string(n) +
                                " class indices");
  if (weight.defined() && (weight.dim() > 1 || weight.numel() != classes))
    throw std::invalid_argument(std::string(op) + ": inconsistent weight size, expected " + std::to_string(classes) +
                                " but got " + shape_str(weight.shape()));
  Tensor pick = target_class_mask(op, target, n, classes, input.device());
  Tensor zero = zero_like_scalar(input);
  Tensor x_target = sum(where(pick, x, zero), {1}, /*keepdim=*/true);  // [N, 1]
  Tensor h = relu(add(add(neg(x_target), margin), x));                // max(0, margin - x[y] + x[i])
  if (p == 2) h = mul(h, h);
  if (weight.defined()) {
    Tensor w = weight.detach().to(input.dtype()).reshape({1, classes});
    h = mul(h, sum(where(pick, w, zero), {1}, /*keepdim=*/true));  // w[y]
  }
  Tensor per_row = div(sum(where(pick, zero, h), {1}), scalar_tensor(static_cast<double>(classes), input.options()));
  return reduce_rows(per_row, reduction, target.dim() == 0);
}

Tensor triplet_margin_loss(const Tensor& anchor_in, const Tensor& positive_in, const Tensor& negative_in, double margin,
                           double p, double eps, bool swap, Reduction reduction) {
  const auto cast = amp::autocast(amp::CastPolicy::F32, anchor_in, positive_in, negative_in);
  const Tensor &anchor = cast[0], &positive = cast[1], &negative = cast[2];
  const char* op = "triplet_margin_loss";
  check_floating(anchor, op, "anchor");
  check_same_device(anchor, positive, op);
  check_same_device(anchor, negative, op);
  if (anchor.dim() != positive.dim() || anchor.dim() != negative.dim())
    throw std::invalid_argument(std::string(op) +
                                ": anchor, positive and negative must have the same number of dims, got " +
                                shape_str(anchor.shape()) + ", " + shape_str(positive.shape()) + " and " +
                                shape_str(negative.shape()));
  if (anchor.dim() == 0)
    throw std::invalid_argument(std::string(op) + ": expected inputs with at least 1 dim, got 0-dim");
  if (!(p > 0) || !std::isfinite(p))
    throw std::invalid_argument(std::string(op) + ": p must be a finite number > 0, got " + std::to_string(p));
  check_broadcast(op, anchor, positive, "anchor", "positive");
  check_broadcast(op, anchor, negative, "anchor", "negative");
  Tensor d_pos = pairwise_distance(anchor, positive, p, eps);
  Tensor d_neg = pairwise_distance(anchor, negative, p, eps);
  if (swap) d_neg = minimum(d_neg, pairwise_distance(positive, negative, p, eps));
  return apply_reduction(clamp(sub(add(d_pos, margin), d_neg), 0.0, std::nullopt), reduction);
}

}  // namespace dl
