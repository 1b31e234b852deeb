// Loss functions (PyTorch 1.13 semantics): argument checks, dispatch and derivatives.
//
// cross_entropy (class indices) and nll_loss run fused kernels (kernels/loss.h) with fused
// backwards; cross_entropy with class probabilities is PyTorch's composition of log_softmax and
// sums. The elementwise losses are written with engine ops, with hand-written derivatives where
// PyTorch's own formula differs from the derivative of the composition (smooth_l1 at beta = 0
// and huber, the clamped logs of binary_cross_entropy, the stable form of
// binary_cross_entropy_with_logits). The other losses are in loss_more.cpp.
#include "engine/ops/loss.h"

#include <limits>
#include <optional>
#include <stdexcept>

#include "engine/amp/autocast.h"
#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss_common.h"
#include "engine/ops/reduce.h"
#include "engine/tensor/host_reads.h"
#include "kernels/loss.h"

namespace dl {

Reduction parse_reduction(const std::string& s) {
  if (s == "none") return Reduction::None;
  if (s == "mean") return Reduction::Mean;
  if (s == "sum") return Reduction::Sum;
  throw std::invalid_argument("invalid reduction '" + s + "': expected one of 'none', 'mean', 'sum'");
}

namespace loss_detail {

void check_floating(const Tensor& x, const char* op, const char* what) {
  if (!is_floating(x.dtype()))
    throw std::invalid_argument(std::string(op) + ": expected a floating-point " + what + ", got " +
                                dtype_name(x.dtype()));
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  if (b.defined() && a.device() != b.device())
    throw std::invalid_argument(std::string(op) + ": expected all tensors on " + a.device().str() +
                                ", got one on " + b.device().str());
}

Tensor apply_reduction(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::None: return loss;
    case Reduction::Mean: return mean(loss);
    case Reduction::Sum: return sum(loss);
  }
  return loss;
}

}  // namespace loss_detail

namespace {

using loss_detail::apply_reduction;
using loss_detail::check_floating;
using loss_detail::check_same_device;

// ---- class-index losses --------------------------------------------------------------

void check_class_weight(const char* op, const Tensor& weight, int64_t classes) {
  if (weight.dim() != 1 || weight.size(0) != classes)
    throw std::invalid_argument(std::string(op) + ": weight tensor should be defined either for all " +
                                std::to_string(classes) +
                                " classes or no classes but got weight tensor of shape: " + shape_str(weight.shape()));
}

// Validated, contiguous operands of cross_entropy / nll_loss.
struct ClassLoss {
  Tensor scores;  // [N, C, inner] data (x's shape), contiguous, detached
  Tensor target;  // i64, contiguous
  Tensor weight;  // [C] of x's dtype, contiguous, or undefined
  ClassLossArgs args;
};

ClassLoss prepare_class_loss(const char* op, const Tensor& x, const Tensor& target, const Tensor& weight,
                             int64_t ignore_index, Reduction reduction) {
  check_floating(x, op, "input");
  check_same_device(x, target, op);
  check_same_device(x, weight, op);
  if (x.dim() < 1)
    throw std::invalid_argument(std::string(op) + ": expected input of shape [C], [N, C] or [N, C, d1, ...], got " +
                                shape_str(x.shape()));
  if (target.dtype() != DType::I64)
    throw std::invalid_argument(std::string(op) + ": expected target of int64 class indices, got " +
                                dtype_name(target.dtype()));
  Shape expect;
  if (x.dim() >= 2) {
    expect = x.shape();
    expect.erase(expect.begin() + 1);
  }
  if (target.shape() != expect)
    throw std::invalid_argument(std::string(op) + ": expected target shape " + shape_str(expect) +
                                " for input shape " + shape_str(x.shape()) + ", got " + shape_str(target.shape()));
  ClassLoss L;
  L.args.classes = x.dim() == 1 ? x.size(0) : x.size(1);
  L.args.n = x.dim() == 1 ? 1 : x.size(0);
  for (int64_t d = 2; d < x.dim(); ++d) L.args.inner *= x.size(d);
  L.args.ignore_index = ignore_index;
  L.args.reduction = reduction;
  if (weight.defined()) {
    check_class_weight(op, weight, L.args.classes);
    L.weight = weight.detach().to(x.dtype()).contiguous();
  }
  if (L.args.classes == 0 && target.numel() > 0)
    throw std::invalid_argument(std::string(op) + ": input has 0 classes (shape " + shape_str(x.shape()) + ")");
  L.scores = x.detach().contiguous();
  L.target = target.detach().contiguous();
  return L;
}

[[noreturn]] void throw_bad_target(const char* op, const Tensor& target, const ClassLossArgs& args, int64_t pos) {
  const int64_t v = static_cast<int64_t>(target.reshape({-1}).select(0, pos).item());
  throw std::out_of_range(std::string(op) + ": target " + std::to_string(v) + " at position " +
                          std::to_string(pos) + " is out of bounds: class indices must be in [0, " +
                          std::to_string(args.classes - 1) + "] or equal ignore_index (" +
                          std::to_string(args.ignore_index) + ")");
}

// Under a DeferChecksGuard (engine/tensor/host_reads.h) the targets' range check is not read
// back here: targets out of range count as ignored, and the error is thrown at the next host
// read. Otherwise the kernel checks them and the op throws at once.
void defer_target_check(const char* op, ClassLoss& L) {
  if (!checks_deferred() || L.target.numel() == 0) return;
  Tensor safe = empty(L.target.shape(), L.target.options());
  Tensor first_bad = empty({1}, L.target.options());
  sanitize_class_targets_stub(L.target.device())(L.target, L.args, safe, first_bad);
  defer_check(first_bad, [op, target = L.target, args = L.args](int64_t pos) { throw_bad_target(op, target, args, pos); });
  L.target = safe;
  L.args.check_targets = false;
}

Shape output_shape(const Tensor& target, Reduction r) { return r == Reduction::None ? target.shape() : Shape{}; }

int64_t class_dim_of(const Tensor& logits) { return logits.dim() == 1 ? 0 : 1; }

// cross_entropy with class probabilities, composed of engine ops as PyTorch 1.13 composes it
// (cross_entropy_loss_prob_target): both logits and target get their gradients from autograd.
Tensor cross_entropy_probs(const Tensor& logits, const Tensor& target, const Tensor& weight, int64_t ignore_index,
                           Reduction reduction, double label_smoothing) {
  const char* op = "cross_entropy";
  check_floating(logits, op, "input");
  check_same_device(logits, target, op);
  check_same_device(logits, weight, op);
  if (logits.dim() < 1 || target.shape() != logits.shape()) {
    Shape index_shape = logits.shape();
    if (logits.dim() >= 1) index_shape.erase(index_shape.begin() + class_dim_of(logits));
    throw std::invalid_argument(std::string(op) + ": expected int64 class indices of shape " + shape_str(index_shape) +
                                " or class probabilities of the input's shape " + shape_str(logits.shape()) +
                                ", got a " + dtype_name(target.dtype()) + " target of shape " +
                                shape_str(target.shape()));
  }
  if (ignore_index >= 0)
    throw std::invalid_argument(std::string(op) + ": ignore_index (" + std::to_string(ignore_index) +
                                ") is not supported for floating point target");
  const int64_t class_dim = class_dim_of(logits);
  const int64_t classes = logits.size(class_dim);
  Tensor w;
  if (weight.defined()) {
    check_class_weight(op, weight, classes);
    Shape ws(static_cast<size_t>(logits.dim()), 1);
    ws[class_dim] = classes;
    w = weight.detach().to(logits.dtype()).reshape(ws);  // [1, C, 1, ...]
  }
  if (logits.numel() == 0) {
    NoGradGuard ng;
    if (reduction == Reduction::None) {
      Shape s = logits.shape();
      s.erase(s.begin() + class_dim);
      return zeros(s, logits.options());
    }
    return full({}, reduction == Reduction::Mean ? std::numeric_limits<double>::quiet_NaN() : 0.0, logits.options());
  }
  Tensor t = target.dtype() == logits.dtype() ? target : target.to(logits.dtype());
  if (label_smoothing > 0) t = add(mul(t, 1.0 - label_smoothing), label_smoothing / static_cast<double>(classes));
  Tensor prod = mul(log_softmax(logits, class_dim), t);
  if (w.defined()) prod = mul(prod, w);
  prod = neg(prod);
  switch (reduction) {
    case Reduction::None: return sum(prod, {class_dim});
    case Reduction::Sum: return sum(prod);
    case Reduction::Mean:  // by the number of positions, N * d1 * ...
      return div(sum(prod), scalar_tensor(static_cast<double>(logits.numel() / classes), logits.options()));
  }
  return prod;
}

// smooth_l1_loss and huber_loss: with d = input - target, `quad` d^2 / 2 for |d| < k, else
// `slope` (|d| - k / 2); smooth_l1: k = beta, quad 1 / beta, slope 1; huber: k = delta,
// quad 1, slope delta (k = 0: |d|).
Tensor piecewise_l1(const char* op, const char* node, const Tensor& input, const Tensor& target,
                    Reduction reduction, double k, double quad, double slope) {
  check_floating(input, op, "input");
  Tensor d, loss;
  {
    NoGradGuard ng;
    d = sub(input, target);
    Tensor ad = abs(d);
    Tensor lin = slope == 1.0 ? add(ad, -0.5 * k) : mul(add(ad, -0.5 * k), slope);
    loss = k == 0 ? ad : where(lt(ad, k), mul(mul(d, d), 0.5 * quad), lin);
  }
  if (any_requires_grad({input, target})) {
    // PyTorch's derivative wrt the first argument a of d = a - b: -slope for d <= -k, +slope
    // for d >= k, quad d between. The target's gradient is the same rule applied to b - a (so
    // both are -1 at d = 0 when k = 0).
    const bool gi = input.requires_grad(), gt_ = target.requires_grad();
    record(node, loss, {input, target},
           [d, k, quad, slope, gi, gt_, si = input.shape(), st = target.shape()](const Tensor& g) -> TensorList {
             auto rule = [&](const Tensor& v) {
               Tensor gs = slope == 1.0 ? g : mul(g, slope);
               return k == 0 ? where(le(v, 0.0), neg(gs), gs)
                             : where(le(v, -k), neg(gs), where(ge(v, k), gs, mul(mul(g, v), quad)));
             };
             return {gi ? sum_to(rule(d), si) : Tensor(), gt_ ? sum_to(rule(neg(d)), st) : Tensor()};
           });
  }
  return apply_reduction(loss, reduction);
}

}  // namespace

Tensor cross_entropy(const Tensor& logits_in, const Tensor& target_in, const Tensor& weight_in, int64_t ignore_index,
                     Reduction reduction, double label_smoothing) {
  const auto in = amp::autocast(amp::CastPolicy::F32, logits_in, target_in, weight_in);
  const Tensor &logits = in[0], &target = in[1], &weight = in[2];
  if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
    throw std::invalid_argument("cross_entropy: label_smoothing must be between 0.0 and 1.0, got " +
                                std::to_string(label_smoothing));
  if (target.defined() && is_floating(target.dtype()))
    return cross_entropy_probs(logits, target, weight, ignore_index, reduction, label_smoothing);
  ClassLoss L = prepare_class_loss("cross_entropy", logits, target, weight, ignore_index, reduction);
  L.args.label_smoothing = label_smoothing;
  defer_target_check("cross_entropy", L);
  Tensor out = empty(output_shape(target, reduction), logits.options());
  Tensor total_weight = empty({}, logits.options());
  Tensor lse = empty({L.args.n * L.args.inner}, logits.options());  // [N, inner], for backward
  const int64_t bad = cross_entropy_stub(logits.device())(L.scores, L.target, L.weight, L.args, out,
                                                          total_weight, lse);
  if (bad >= 0) throw_bad_target("cross_entropy", L.target, L.args, bad);
  if (any_requires_grad({logits})) {
    record("CrossEntropyBackward", out, {logits},
           [L, lse, total_weight](const Tensor& g) -> TensorList {
             Tensor gx = empty(L.scores.shape(), L.scores.options());
             cross_entropy_backward_stub(gx.device())(g.contiguous(), L.scores, L.target, L.weight, lse,
                                                      total_weight, L.args, gx);
             return {gx};
           });
  }
  return out;
}

Tensor nll_loss(const Tensor& log_probs_in, const Tensor& target_in, const Tensor& weight_in, int64_t ignore_index,
                Reduction reduction) {
  const auto in = amp::autocast(amp::CastPolicy::F32, log_probs_in, target_in, weight_in);
  const Tensor &log_probs = in[0], &target = in[1], &weight = in[2];
  ClassLoss L = prepare_class_loss("nll_loss", log_probs, target, weight, ignore_index, reduction);
  defer_target_check("nll_loss", L);
  Tensor out = empty(output_shape(target, reduction), log_probs.options());
  Tensor total_weight = empty({}, log_probs.options());
  const int64_t bad = nll_loss_stub(log_probs.device())(L.scores, L.target, L.weight, L.args, out, total_weight);
  if (bad >= 0) throw_bad_target("nll_loss", L.target, L.args, bad);
  if (any_requires_grad({log_probs})) {
    // The gradient needs only targets and weights; scores are not captured.
    L.scores = Tensor();
    Shape shape = log_probs.shape();
    record("NllLossBackward", out, {log_probs},
           [L, shape, total_weight](const Tensor& g) -> TensorList {
             Tensor gx = empty(shape, total_weight.options());
             nll_loss_backward_stub(gx.device())(g.contiguous(), L.target, L.weight, total_weight, L.args, gx);
             return {gx};
           });
  }
  return out;
}

// ---- elementwise losses ------------------------------------------------------------------

Tensor mse_loss(const Tensor& input_in, const Tensor& target_in, Reduction reduction) {
  const auto in = amp::autocast(amp::CastPolicy::F32, input_in, target_in);
  const Tensor &input = in[0], &target = in[1];
  check_floating(input, "mse_loss", "input");
  Tensor d = sub(input, target);
  return apply_reduction(mul(d, d), reduction);
}

Tensor l1_loss(const Tensor& input_in, const Tensor& target_in, Reduction reduction) {
  const auto in = amp::autocast(amp::CastPolicy::F32, input_in, target_in);
  const Tensor &input = in[0], &target = in[1];
  check_floating(input, "l1_loss", "input");
  return apply_reduction(abs(sub(input, target)), reduction);
}

Tensor smooth_l1_loss(const Tensor& input_in, const Tensor& target_in, Reduction reduction, double beta) {
  const auto in = amp::autocast(amp::CastPolicy::F32, input_in, target_in);
  const Tensor &input = in[0], &target = in[1];
  if (beta < 0)
    throw std::invalid_argument("smooth_l1_loss: beta must be >= 0, got " + std::to_string(beta));
  const double quad = beta == 0 ? 0.0 : 1.0 / beta;
  return piecewise_l1("smooth_l1_loss", "SmoothL1LossBackward", input, target, reduction, beta, quad, 1.0);
}

Tensor huber_loss(const Tensor& input_in, const Tensor& target_in, Reduction reduction, double delta) {
  const auto in = amp::autocast(amp::CastPolicy::F32, input_in, target_in);
  const Tensor &input = in[0], &target = in[1];
  if (!(delta > 0))
    throw std::invalid_argument("huber_loss: delta must be > 0 (non-positive values are not supported), got " +
                                std::to_string(delta));
  return piecewise_l1("huber_loss", "HuberLossBackward", input, target, reduction, delta, 1.0, delta);
}

namespace {

[[noreturn]] void throw_probability_range(const char* op, double lo, double hi) {
  throw std::invalid_argument(std::string(op) + ": all elements of input should be between 0 and 1, got values in [" +
                              std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

// binary_cross_entropy's "input in [0, 1]" check (NaN fails it): min and max read back, or
// under a DeferChecksGuard (engine/tensor/host_reads.h) kept on the device with the verdict
// (0 when outside, else -1) until the next host read, which throws the same message.
void check_probabilities(const char* op, const Tensor& x) {
  if (x.numel() == 0) return;
  const Tensor lo = min(x), hi = max(x);
  if (!checks_deferred()) {
    const double l = lo.item(), h = hi.item();
    if (!(l >= 0.0 && h <= 1.0)) throw_probability_range(op, l, h);
    return;
  }
  const Tensor inside = mul(ge(lo, 0.0), le(hi, 1.0));  // bool: and
  const Tensor bad = add(logical_not(inside).to(DType::I64), -1.0);
  defer_check(bad, [op, lo, hi](int64_t) { throw_probability_range(op, lo.item(), hi.item()); });
}

}  // namespace

Tensor binary_cross_entropy(const Tensor& input_in, const Tensor& target_in, const Tensor& weight_in,
                            Reduction reduction) {
  const auto in = amp::autocast(amp::CastPolicy::F32, input_in, target_in, weight_in);
  const Tensor &input = in[0], &target = in[1], &weight = in[2];
  const char* op = "binary_cross_entropy";
  check_floating(input, op, "input");
  check_floating(target, op, "target");
  if (input.shape() != target.shape())
    throw std::invalid_argument(std::string(op) + ": target shape " + shape_str(target.shape()) +
                                " must equal the input shape " + shape_str(input.shape()));
  if (weight.defined() && broadcast_shapes(weight.shape(), input.shape()) != input.shape())
    throw std::invalid_argument(std::string(op) + ": weight shape " + shape_str(weight.shape()) +
                                " must broadcast to the input shape " + shape_str(input.shape()));
  Tensor x = input.detach(), t = target.detach();
  Tensor w = weight.defined() ? weight.detach().to(input.dtype()) : Tensor();
  Tensor loss;
  {
    NoGradGuard ng;
    check_probabilities(op, x);
    // -(t * max(log x, -100) + (1 - t) * max(log(1 - x), -100))
    Tensor log_x = clamp(log(x), -100.0, std::nullopt);
    Tensor log_1mx = clamp(log(add(neg(x), 1.0)), -100.0, std::nullopt);
    loss = neg(add(mul(t, log_x), mul(add(neg(t), 1.0), log_1mx)));
    if (w.defined()) loss = mul(loss, w);
  }
  if (any_requires_grad({input, target})) {
    const bool gi = input.requires_grad(), gt_ = target.requires_grad();
    // dx = g w (x - t) / max(x (1 - x), 1e-12);  dt = -g w logit(x)  (PyTorch's formulas).
    record("BinaryCrossEntropyBackward", loss, {input, target}, [x, t, w, gi, gt_](const Tensor& g) -> TensorList {
      Tensor gw = w.defined() ? mul(g, w) : g;
      Tensor one_minus_x = add(neg(x), 1.0);
      Tensor gx, gt;
      if (gi) gx = div(mul(gw, sub(x, t)), clamp(mul(x, one_minus_x), 1e-12, std::nullopt));
      if (gt_) gt = mul(gw, sub(log(one_minus_x), log(x)));
      return {gx, gt};
    });
  }
  return apply_reduction(loss, reduction);
}

Tensor binary_cross_entropy_with_logits(const Tensor& input_in, const Tensor& target_in, const Tensor& weight_in,
                                        const Tensor& pos_weight_in, Reduction reduction) {
  const auto in = amp::autocast(amp::CastPolicy::F32, input_in, target_in, weight_in, pos_weight_in);
  const Tensor &input = in[0], &target = in[1], &weight = in[2], &pos_weight = in[3];
  const char* op = "binary_cross_entropy_with_logits";
  check_floating(input, op, "input");
  check_floating(target, op, "target");
  if (input.shape() != target.shape())
    throw std::invalid_argument(std::string(op) + ": target size " + shape_str(target.shape()) +
                                " must be the same as input size " + shape_str(input.shape()));
  Tensor x = input.detach(), t = target.detach();
  Tensor w = weight.defined() ? weight.detach().to(input.dtype()) : Tensor();
  Tensor pw = pos_weight.defined() ? pos_weight.detach().to(input.dtype()) : Tensor();
  Tensor loss, sp;  // sp = softplus(-x) = log(1 + exp(-x)), computed stably
  {
    NoGradGuard ng;
    // With m = max(-x, 0): softplus(-x) = log(exp(-m) + exp(-x - m)) + m.
    Tensor m = clamp(neg(x), 0.0, std::nullopt);
    sp = add(log(add(exp(neg(m)), exp(sub(neg(x), m)))), m);
    // loss = (1 - t) x + (1 + (pw - 1) t) softplus(-x)
    Tensor lin = mul(add(neg(t), 1.0), x);
    loss = pw.defined() ? add(lin, mul(add(mul(add(pw, -1.0), t), 1.0), sp)) : add(lin, sp);
    if (w.defined()) loss = mul(loss, w);
  }
  if (any_requires_grad({input, target})) {
    const bool gi = input.requires_grad(), gt_ = target.requires_grad();
    // dx = g w ((pw t + 1 - t) sigmoid(x) - pw t)  (pw = 1: sigmoid(x) - t)
    // dt = g w ((pw - 1) softplus(-x) - x)
    record("BinaryCrossEntropyWithLogitsBackward", loss, {input, target},
           [x, t, w, pw, sp, gi, gt_](const Tensor& g) -> TensorList {
             Tensor gw = w.defined() ? mul(g, w) : g;
             Tensor gx, gt;
             if (gi) {
               Tensor d = pw.defined() ? sub(mul(add(sub(mul(pw, t), t), 1.0), sigmoid(x)), mul(pw, t))
                                       : sub(sigmoid(x), t);
               gx = sum_to(mul(gw, d), x.shape());
             }
             if (gt_) {
               Tensor d = pw.defined() ? sub(mul(add(pw, -1.0), sp), x) : neg(x);
               gt = sum_to(mul(gw, d), t.shape());
             }
             return {gx, gt};
           });
  }
  return apply_reduction(loss, reduction);
}

}  // namespace dl
