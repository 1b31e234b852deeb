#include "engine/train/step.h"

#include <cmath>
#include <stdexcept>

#include "engine/amp/autocast.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/clip.h"
#include "engine/optim/registry.h"

namespace dl::train {
namespace {

double norm_value(const Tensor& norm) { return norm.defined() ? norm.item() : 0.0; }  // undefined: no gradients

}  // namespace

TrainStep::TrainStep(optim::Optimizer& optimizer, StepOptions options)
    : opt_(optimizer), options_(options) {
  const optim::OptimizerDef* def = optim::find_optimizer_def(opt_.type());
  closure_ = def && def->needs_closure;
  if (options_.accumulate_steps < 1)
    throw std::invalid_argument("accumulate_steps must be >= 1, got " + std::to_string(options_.accumulate_steps));
  if (!(options_.clip_grad_norm >= 0) || !(options_.clip_grad_value >= 0))
    throw std::invalid_argument("gradient clipping thresholds must be >= 0 (0 = off)");
  if (!(options_.clip_norm_type > 0))
    throw std::invalid_argument("clip norm type must be > 0 (or inf)");
  if (closure_) options_.defer_host_reads = false;  // the optimizer reads every evaluation's loss
  if (closure_ && options_.accumulate_steps > 1)
    throw std::invalid_argument(opt_.type() + " re-evaluates the loss on one batch per step; it cannot accumulate "
                                "gradients over several (accumulate_steps must be 1)");
}

void TrainStep::set_grad_scaler(amp::GradScaler* scaler) {
  if (scaler && scaler->enabled() && closure_)
    throw std::invalid_argument(opt_.type() + " re-evaluates the loss inside its step; loss scaling (grad_scaler) "
                                "cannot be used with it");
  scaler_ = scaler && scaler->enabled() ? scaler : nullptr;
}

std::vector<Tensor> TrainStep::params_with_grad() const {
  std::vector<Tensor> ps;
  for (const optim::ParamGroup& g : opt_.param_groups())
    for (const Tensor& p : g.params) ps.push_back(p);
  return ps;
}

Tensor TrainStep::update() {
  for (const Hook& h : before_update_) h();
  Tensor norm;
  const std::vector<Tensor> ps = params_with_grad();
  const bool found_inf = scaler_ && scaler_->unscale_(ps);  // clipping sees the true gradients
  if (options_.clip_grad_value > 0) optim::clip_grad_value_(ps, options_.clip_grad_value);
  if (options_.clip_grad_norm > 0) norm = optim::clip_grad_norm_async_(ps, options_.clip_grad_norm, options_.clip_norm_type);
  if (norm.defined()) last_norm_ = norm;
  if (!found_inf) opt_.step();
  if (scaler_) scaler_->update(found_inf);
  last_skipped_ = found_inf;
  opt_.zero_grad();
  pending_ = 0;
  for (const Hook& h : after_update_) h();
  return norm;
}

StepResult TrainStep::run(const LossClosure& loss) {
  StepResult r;
  if (closure_) {
    // The optimizer evaluates as often as it needs; hooks and clipping see each evaluation's
    // gradients before the optimizer reads them.
    const std::vector<Tensor> ps = params_with_grad();
    r.loss = opt_.step([&] {
      opt_.zero_grad();
      Tensor l;
      {
        amp::AutocastGuard ac(options_.autocast);
        l = loss();
      }
      for (const BackwardHook& h : before_backward_) h(true);
      l.backward();
      for (const Hook& h : before_update_) h();
      if (options_.clip_grad_value > 0) optim::clip_grad_value_(ps, options_.clip_grad_value);
      if (options_.clip_grad_norm > 0)
        r.grad_norm = optim::clip_grad_norm_(ps, options_.clip_grad_norm, options_.clip_norm_type);
      return l.item();
    });
    opt_.zero_grad();
    for (const Hook& h : after_update_) h();
    r.updated = true;
    r.loss_value = full({}, r.loss, TensorOptions(DType::F64));
    return r;
  }
  Tensor l;
  {
    amp::AutocastGuard ac(options_.autocast);
    l = loss();
  }
  r.loss_value = l.detach();
  if (!options_.defer_host_reads) {
    r.loss = l.item();
    if (!std::isfinite(r.loss)) return r;  // the caller decides; no gradients were accumulated
  }
  if (options_.accumulate_steps > 1) l = mul(l, 1.0 / static_cast<double>(options_.accumulate_steps));
  if (scaler_) l = scaler_->scale_loss(l);
  for (const BackwardHook& h : before_backward_) h(pending_ + 1 >= options_.accumulate_steps);
  l.backward();
  if (++pending_ >= options_.accumulate_steps) {
    r.grad_norm_value = update();
    if (options_.clip_grad_norm > 0 && !options_.defer_host_reads) r.grad_norm = norm_value(r.grad_norm_value);
    r.updated = true;
    r.skipped = last_skipped_;
  }
  return r;
}

bool TrainStep::flush(std::optional<double>* grad_norm) {
  if (pending_ == 0) return false;
  const Tensor n = update();
  if (grad_norm) *grad_norm = options_.clip_grad_norm > 0 ? std::optional<double>(norm_value(n)) : std::nullopt;
  return true;
}

}  // namespace dl::train
