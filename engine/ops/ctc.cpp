// ctc_loss: argument checks, dispatch to the kernels (kernels/ctc.h), the derivative, the
// reduction, and the loss registration (engine/nn/loss_registry.h).
#include "engine/ops/ctc.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/autograd/autograd.h"
#include "engine/nn/loss_registry.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/loss_common.h"
#include "engine/ops/reduce.h"
#include "kernels/ctc.h"

namespace dl {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument("ctc_loss: " + msg); }

std::string at(const char* name, int64_t b) { return std::string(name) + "[" + std::to_string(b) + "]"; }

// The N values of input_lengths / target_lengths, read on the host.
std::vector<int64_t> host_lengths(const Tensor& t, const char* name, int64_t batch, bool unbatched) {
  if (!t.defined()) fail(std::string(name) + " is missing");
  if (t.dtype() != DType::I64) fail(std::string("expected int64 ") + name + ", got " + dtype_name(t.dtype()));
  const bool shape_ok = unbatched ? t.dim() <= 1 && t.numel() == 1 : t.dim() == 1 && t.size(0) == batch;
  if (!shape_ok)
    fail(std::string(name) + " must have shape " + (unbatched ? "[] or [1]" : "[" + std::to_string(batch) + "]") +
         " (one length per sample), got " + shape_str(t.shape()));
  Tensor h = t.detach().cpu().contiguous();
  const int64_t* p = h.data<int64_t>();
  return std::vector<int64_t>(p, p + h.numel());
}

struct CtcInputs {
  Tensor log_probs;  // [T, N, C], contiguous, detached
  Tensor targets;    // flat i64, contiguous, on log_probs' device
  CtcArgs args;
  bool unbatched = false;
};

// log_probs, blank and input_lengths, checked (shared by ctc_loss and ctc_greedy_decode).
CtcInputs prepare_inputs(const Tensor& log_probs, const Tensor& input_lengths, int64_t blank) {
  loss_detail::check_floating(log_probs, "ctc_loss", "log_probs");
  if (log_probs.dim() != 2 && log_probs.dim() != 3)
    fail("expected log_probs of shape [T, N, C] (or [T, C] unbatched), got " + shape_str(log_probs.shape()));
  CtcInputs in;
  in.unbatched = log_probs.dim() == 2;
  CtcArgs& a = in.args;
  a.max_time = log_probs.size(0);
  a.batch = in.unbatched ? 1 : log_probs.size(1);
  a.classes = log_probs.size(log_probs.dim() - 1);
  a.blank = blank;
  if (blank < 0 || blank >= a.classes)
    fail("blank (" + std::to_string(blank) + ") must be in the label range [0, " + std::to_string(a.classes) +
         ") of log_probs " + shape_str(log_probs.shape()));
  a.input_len = host_lengths(input_lengths, "input_lengths", a.batch, in.unbatched);
  for (int64_t b = 0; b < a.batch; ++b) {
    const int64_t il = a.input_len[static_cast<size_t>(b)];
    if (il < 0 || il > a.max_time)
      fail(at("input_lengths", b) + " = " + std::to_string(il) + " is out of range: input lengths must be in [0, " +
           std::to_string(a.max_time) + "], T of log_probs " + shape_str(log_probs.shape()));
  }
  in.log_probs = in.unbatched ? log_probs.detach().unsqueeze(1).contiguous() : log_probs.detach().contiguous();
  return in;
}

// Checks every argument and every length and label (the kernels trust them).
CtcInputs prepare(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                  const Tensor& target_lengths, int64_t blank, bool zero_infinity) {
  CtcInputs in = prepare_inputs(log_probs, input_lengths, blank);
  CtcArgs& a = in.args;
  a.zero_infinity = zero_infinity;
  if (!targets.defined() || targets.dtype() != DType::I64)
    fail(std::string("expected int64 targets, got ") + (targets.defined() ? dtype_name(targets.dtype()) : "none"));
  loss_detail::check_same_device(log_probs, targets, "ctc_loss");
  a.target_len = host_lengths(target_lengths, "target_lengths", a.batch, in.unbatched);
  for (int64_t b = 0; b < a.batch; ++b) {
    const int64_t tl = a.target_len[static_cast<size_t>(b)];
    if (tl < 0) fail(at("target_lengths", b) + " = " + std::to_string(tl) + " is negative");
    a.max_target_len = std::max(a.max_target_len, tl);
  }
  // Where each sample's labels start in the flat targets.
  a.target_offset.resize(static_cast<size_t>(a.batch));
  if (targets.dim() == 2) {
    if (targets.size(0) != a.batch)
      fail("padded targets " + shape_str(targets.shape()) + " must have one row per sample (N = " +
           std::to_string(a.batch) + ")");
    const int64_t S = targets.size(1);
    for (int64_t b = 0; b < a.batch; ++b) {
      if (a.target_len[static_cast<size_t>(b)] > S)
        fail(at("target_lengths", b) + " = " + std::to_string(a.target_len[static_cast<size_t>(b)]) +
             " exceeds the padded target length S = " + std::to_string(S) + " of targets " +
             shape_str(targets.shape()));
      a.target_offset[static_cast<size_t>(b)] = b * S;
    }
  } else if (targets.dim() == 1) {
    int64_t pos = 0;
    for (int64_t b = 0; b < a.batch; ++b) {
      a.target_offset[static_cast<size_t>(b)] = pos;
      pos += a.target_len[static_cast<size_t>(b)];
    }
    if (pos != targets.size(0))
      fail("concatenated targets " + shape_str(targets.shape()) + " must hold sum(target_lengths) = " +
           std::to_string(pos) + " labels");
  } else {
    fail("expected targets of shape [N, S] (padded) or [sum(target_lengths)] (concatenated), got " +
         shape_str(targets.shape()));
  }
  in.targets = targets.detach().contiguous().reshape({-1});
  const Tensor host = in.targets.cpu();
  const int64_t* lab = host.numel() ? host.data<int64_t>() : nullptr;
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t k = 0; k < a.target_len[static_cast<size_t>(b)]; ++k) {
      const int64_t v = lab[a.target_offset[static_cast<size_t>(b)] + k];
      const std::string where = "label " + std::to_string(v) + " at position " + std::to_string(k) + " of sample " +
                                std::to_string(b);
      if (v < 0 || v >= a.classes)
        fail("targets: " + where + " is out of range [0, " + std::to_string(a.classes) + ")");
      if (v == blank) fail("targets: " + where + " equals the blank label (" + std::to_string(blank) + ")");
    }
  return in;
}

}  // namespace

Tensor ctc_loss(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                const Tensor& target_lengths, int64_t blank, Reduction reduction, bool zero_infinity) {
  CtcInputs in = prepare(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity);
  const CtcArgs& a = in.args;
  const TensorOptions opt = log_probs.options();
  Tensor nll = empty({a.batch}, opt);
  Tensor log_alpha = empty({a.batch, a.max_time, 2 * a.max_target_len + 1}, opt);
  ctc_loss_stub(log_probs.device())(in.log_probs, in.targets, a, nll, log_alpha);
  Tensor loss = nll;
  if (any_requires_grad({log_probs})) {
    loss = nll.detach();  // the node's output; nll itself is kept for the backward
    record("CtcLossBackward", loss, {log_probs},
           [in, nll, log_alpha, shape = log_probs.shape()](const Tensor& g) -> TensorList {
             Tensor grad = empty(in.log_probs.shape(), in.log_probs.options());
             ctc_loss_backward_stub(grad.device())(g.contiguous(), in.log_probs, in.targets, nll, log_alpha, in.args,
                                                   grad);
             return {grad.reshape(shape)};
           });
  }
  if (zero_infinity)
    loss = where(eq(loss, std::numeric_limits<double>::infinity()), zeros({}, opt), loss);
  switch (reduction) {
    case Reduction::None: return in.unbatched ? loss.reshape({}) : loss;
    case Reduction::Sum: return sum(loss);
    case Reduction::Mean: {
      std::vector<double> len(a.target_len.begin(), a.target_len.end());
      for (double& v : len) v = std::max(v, 1.0);
      return mean(div(loss, from_vector(len, {a.batch}, opt)));
    }
  }
  return loss;
}

std::vector<std::vector<int64_t>> ctc_greedy_decode(const Tensor& log_probs, const Tensor& input_lengths,
                                                    int64_t blank) {
  const CtcInputs in = prepare_inputs(log_probs, input_lengths, blank);
  const CtcArgs& a = in.args;
  const std::vector<double> lp = in.log_probs.to_vector<double>();  // [T, N, C]
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(a.batch));
  for (int64_t b = 0; b < a.batch; ++b) {
    int64_t prev = blank;
    for (int64_t t = 0; t < a.input_len[static_cast<size_t>(b)]; ++t) {
      const auto row = lp.begin() + (t * a.batch + b) * a.classes;
      const int64_t best = std::max_element(row, row + a.classes) - row;
      if (best != blank && best != prev) out[static_cast<size_t>(b)].push_back(best);
      prev = best;
    }
  }
  return out;
}

namespace nn {
namespace {

const RegisterLoss kCtc({
    "ctc_loss", "CTCLoss",
    "torch.nn.CTCLoss on log-probabilities [T, N, C] with padded or concatenated targets and per-sample lengths",
    {AttrSchema::integer("blank", 0).at_least(0).describe("index of the blank label"), reduction_attr(),
     AttrSchema::boolean("zero_infinity", false)
         .describe("replace infinite losses (no alignment fits) and their gradients by zero")},
    nullptr, {"log_probs", "targets", "input_lengths", "target_lengths"}, ClassTarget::none,
    [](const AttrMap& attrs) -> LossFn {
      const int64_t blank = attr_int(attrs, "blank");
      const Reduction r = parse_reduction(attr_string(attrs, "reduction"));
      const bool zero_inf = attr_bool(attrs, "zero_infinity");
      return [=](const std::vector<Tensor>& x) { return ctc_loss(x[0], x[1], x[2], x[3], blank, r, zero_inf); };
    },
    /*sequence_target=*/true});

}  // namespace
}  // namespace nn
}  // namespace dl
