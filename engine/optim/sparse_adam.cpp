#include "engine/optim/sparse_adam.h"

#include <cmath>

#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/optim/registry.h"
#include "engine/optim/torch_port.h"

namespace dl::optim {

SparseAdam::SparseAdam(std::vector<ParamGroup> groups, const Options& options)
    : Optimizer("SparseAdam", port::complete_options("SparseAdam", options)) {
  init_groups(std::move(groups));
}
SparseAdam::SparseAdam(const NamedTensors& params, const Options& options)
    : SparseAdam(std::vector<ParamGroup>{ParamGroup::from(params)}, options) {}

void SparseAdam::validate(const Options& o) const {
  port::require(0.0 < o.at("lr"), type_, "Invalid learning rate", o.at("lr"));
  port::require(0.0 < o.at("eps"), type_, "Invalid epsilon value", o.at("eps"));
  port::require_betas(type_, o);
  Optimizer::validate(o);
}

std::vector<std::string> SparseAdam::slot_names(const Options&) const { return {"exp_avg", "exp_avg_sq"}; }

namespace {
// [rows, 1, ...] (or the gradient's shape for 0-d and 1-d): true where the gradient row holds
// a non-zero (or NaN) value — the rows an embedding's sparse gradient would hold.
Tensor touched_rows(const Tensor& grad) {
  if (grad.dim() <= 1) return ne(grad, 0.0);
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < grad.dim(); ++d) dims.push_back(d);
  return ne(sum(abs(grad), dims, /*keepdim=*/true), 0.0);
}
}  // namespace

void SparseAdam::step() {
  port::for_each_with_grad(groups_, state_, [](const ParamGroup& g, Tensor& p, const Tensor& grad, ParamState& st) {
    const double lr = g.get("lr"), beta1 = g.get("beta1"), beta2 = g.get("beta2"), eps = g.get("eps");
    Tensor& exp_avg = port::zeros_slot(st, "exp_avg", p);
    Tensor& exp_avg_sq = port::zeros_slot(st, "exp_avg_sq", p);
    st.step += 1;
    const Tensor rows = touched_rows(grad);
    // old <- b * old + (1 - b) * new  <==>  old += (1 - b) * (new - old), on the touched rows.
    const Tensor avg_update = mul(sub(grad, exp_avg), 1.0 - beta1);
    const Tensor sq_update = mul(sub(mul(grad, grad), exp_avg_sq), 1.0 - beta2);
    const Tensor numer = add(avg_update, exp_avg);
    const Tensor denom = add(sqrt(add(sq_update, exp_avg_sq)), eps);
    exp_avg.copy_(where(rows, add(exp_avg, avg_update), exp_avg));
    exp_avg_sq.copy_(where(rows, add(exp_avg_sq, sq_update), exp_avg_sq));
    const double step = static_cast<double>(st.step);
    const double step_size = lr * std::sqrt(1.0 - std::pow(beta2, step)) / (1.0 - std::pow(beta1, step));
    p.copy_(where(rows, add(p, mul(div(numer, denom), -step_size)), p));
  });
}

namespace {
const RegisterOptimizer kRegister({
    "sparse_adam", "SparseAdam",
    "torch.optim.SparseAdam: Adam on the rows whose gradient is not all zero (embedding rows looked up)",
    {port::lr_attr(1e-3).above(0), port::betas_attr(), port::eps_attr(1e-8).above(0)},
    /*rule=*/nullptr,
    [](std::vector<ParamGroup> groups, const Options& d) -> std::unique_ptr<Optimizer> {
      return std::make_unique<SparseAdam>(std::move(groups), d);
    },
    /*max_state_tensors=*/2});
}  // namespace

}  // namespace dl::optim
