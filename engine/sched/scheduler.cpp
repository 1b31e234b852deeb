#include "engine/sched/scheduler.h"

#include <memory>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include "engine/sched/registry.h"

namespace dl::sched {
namespace {

// Python's % and // for a positive divisor (remainder in [0, b)).
int64_t py_mod(int64_t a, int64_t b) {
  int64_t r = a % b;
  return r < 0 ? r + b : r;
}
int64_t py_floordiv(int64_t a, int64_t b) { return (a - py_mod(a, b)) / b; }

// base_lr * factor(base_lr) for every group: the shape of every closed form.
template <class F>
std::vector<double> each_base(const std::vector<double>& base_lrs, F&& f) {
  std::vector<double> out;
  for (double b : base_lrs) out.push_back(f(b));
  return out;
}

}  // namespace

int64_t state_int(const SchedulerState& s, const std::string& key, double v) {
  if (!(v == std::trunc(v) && std::abs(v) < 9.2e18))
    throw std::invalid_argument(s.type + " state: " + key + " is " + optim::option_str(v) + ", expected an integer");
  return static_cast<int64_t>(v);
}

// ---------------------------------------------------------------------------
// base
// ---------------------------------------------------------------------------
LRScheduler::LRScheduler(optim::Optimizer& opt, int64_t last_epoch, bool epoch_based)
    : opt_(opt), last_epoch_(last_epoch) {
  auto& groups = opt_.param_groups();
  if (epoch_based) {
    for (size_t i = 0; i < groups.size(); ++i) {
      auto& o = groups[i].options;
      if (last_epoch == -1) {
        if (!o.count("initial_lr")) o["initial_lr"] = o.at("lr");
      } else if (!o.count("initial_lr")) {
        throw std::invalid_argument("param 'initial_lr' is not specified in param_groups[" +
                                    std::to_string(i) + "] when resuming an optimizer");
      }
      base_lrs_.push_back(o.at("initial_lr"));
    }
  } else {
    base_lrs_ = group_lrs();
  }
  last_lr_ = group_lrs();
}

void LRScheduler::initial_step() {
  step_count_ = 0;
  step();
}

std::vector<double> LRScheduler::group_lrs() const {
  std::vector<double> out;
  for (const auto& g : opt_.param_groups()) out.push_back(g.get("lr"));
  return out;
}

void LRScheduler::set_group_lrs(const std::vector<double>& lrs) {
  auto& groups = opt_.param_groups();
  for (size_t i = 0; i < groups.size() && i < lrs.size(); ++i) groups[i].options["lr"] = lrs[i];
}

void LRScheduler::step() {
  ++step_count_;
  ++last_epoch_;
  set_group_lrs(get_lr());
  last_lr_ = group_lrs();
}

void LRScheduler::step_to(int64_t epoch) {
  ++step_count_;
  last_epoch_ = epoch;
  std::optional<std::vector<double>> closed = closed_form_lr();
  set_group_lrs(closed ? *closed : get_lr());
  last_lr_ = group_lrs();
}

void LRScheduler::step(double) {
  throw std::logic_error(type() + ".step() takes no metric (only ReduceLROnPlateau does)");
}

SchedulerState LRScheduler::state_dict() const {
  SchedulerState s;
  s.type = type();
  s.scalars["last_epoch"] = static_cast<double>(last_epoch_);
  s.scalars["_step_count"] = static_cast<double>(step_count_);
  s.lists["base_lrs"] = base_lrs_;
  s.lists["_last_lr"] = last_lr_;
  save_extra(s);
  return s;
}

void LRScheduler::load_state_dict(const SchedulerState& s) {
  const SchedulerState before = state_dict();
  try {
    load_fields(s);
  } catch (...) {
    load_fields(before);  // a rejected state leaves the scheduler as it was
    throw;
  }
}

void LRScheduler::load_fields(const SchedulerState& s) {
  if (s.type != type())
    throw std::invalid_argument("scheduler state is for " + s.type + " but this scheduler is " + type());
  const size_t n = opt_.param_groups().size();
  for (const char* key : {"base_lrs", "_last_lr"}) {
    auto it = s.lists.find(key);
    if (it != s.lists.end() && it->second.size() != n)
      throw std::invalid_argument(type() + " state: " + key + " has " + std::to_string(it->second.size()) +
                                  " entries for " + std::to_string(n) + " param groups");
  }
  if (!s.scalars.count("last_epoch")) throw std::invalid_argument(s.type + " state has no 'last_epoch'");
  restore_scalar(s, "last_epoch", last_epoch_);
  restore_scalar(s, "_step_count", step_count_);
  if (auto it = s.lists.find("base_lrs"); it != s.lists.end()) base_lrs_ = it->second;
  if (auto it = s.lists.find("_last_lr"); it != s.lists.end()) last_lr_ = it->second;
  load_extra(s);
}

// ---------------------------------------------------------------------------
// StepLR
// ---------------------------------------------------------------------------
StepLR::StepLR(optim::Optimizer& opt, int64_t step_size_, double gamma_, int64_t last_epoch)
    : LRScheduler(opt, last_epoch, true), step_size(step_size_), gamma(gamma_) {
  check_args();
  initial_step();
}

void StepLR::check_args() const {
  if (step_size <= 0) throw std::invalid_argument("StepLR: step_size must be positive");
}

std::vector<double> StepLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (last_epoch_ == 0 || last_epoch_ % step_size != 0) return lrs;
  for (double& lr : lrs) lr = lr * gamma;
  return lrs;
}

std::optional<std::vector<double>> StepLR::closed_form_lr() const {
  const double k = static_cast<double>(py_floordiv(last_epoch_, step_size));
  return each_base(base_lrs_, [&](double b) { return b * std::pow(gamma, k); });
}

void StepLR::save_extra(SchedulerState& s) const {
  s.scalars["step_size"] = static_cast<double>(step_size);
  s.scalars["gamma"] = gamma;
}
void StepLR::load_extra(const SchedulerState& s) {
  restore_scalar(s, "step_size", step_size);
  restore_scalar(s, "gamma", gamma);
  check_args();
}

// ---------------------------------------------------------------------------
// MultiStepLR
// ---------------------------------------------------------------------------
MultiStepLR::MultiStepLR(optim::Optimizer& opt, std::vector<int64_t> ms, double gamma_, int64_t last_epoch)
    : LRScheduler(opt, last_epoch, true), milestones(std::move(ms)), gamma(gamma_) {
  std::sort(milestones.begin(), milestones.end());
  initial_step();
}

std::vector<double> MultiStepLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  auto count = std::count(milestones.begin(), milestones.end(), last_epoch_);
  if (count == 0) return lrs;
  for (double& lr : lrs) lr = lr * std::pow(gamma, static_cast<double>(count));
  return lrs;
}

std::optional<std::vector<double>> MultiStepLR::closed_form_lr() const {
  const auto k = static_cast<double>(std::upper_bound(milestones.begin(), milestones.end(), last_epoch_) -
                                     milestones.begin());  // bisect_right
  return each_base(base_lrs_, [&](double b) { return b * std::pow(gamma, k); });
}

void MultiStepLR::save_extra(SchedulerState& s) const {
  s.lists["milestones"] = std::vector<double>(milestones.begin(), milestones.end());
  s.scalars["gamma"] = gamma;
}
void MultiStepLR::load_extra(const SchedulerState& s) {
  if (auto it = s.lists.find("milestones"); it != s.lists.end()) {
    milestones.clear();
    for (double v : it->second) milestones.push_back(state_int(s, "milestones", v));
    std::sort(milestones.begin(), milestones.end());
  }
  restore_scalar(s, "gamma", gamma);
}

// ---------------------------------------------------------------------------
// ExponentialLR
// ---------------------------------------------------------------------------
ExponentialLR::ExponentialLR(optim::Optimizer& opt, double gamma_, int64_t last_epoch)
    : LRScheduler(opt, last_epoch, true), gamma(gamma_) {
  initial_step();
}

std::vector<double> ExponentialLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (last_epoch_ == 0) return lrs;
  for (double& lr : lrs) lr = lr * gamma;
  return lrs;
}

std::optional<std::vector<double>> ExponentialLR::closed_form_lr() const {
  return each_base(base_lrs_, [&](double b) { return b * std::pow(gamma, static_cast<double>(last_epoch_)); });
}

void ExponentialLR::save_extra(SchedulerState& s) const { s.scalars["gamma"] = gamma; }
void ExponentialLR::load_extra(const SchedulerState& s) { restore_scalar(s, "gamma", gamma); }

// ---------------------------------------------------------------------------
// CosineAnnealingLR
// ---------------------------------------------------------------------------
CosineAnnealingLR::CosineAnnealingLR(optim::Optimizer& opt, int64_t T_max_, double eta_min_, int64_t last_epoch)
    : LRScheduler(opt, last_epoch, true), T_max(T_max_), eta_min(eta_min_) {
  check_args();
  initial_step();
}

void CosineAnnealingLR::check_args() const {
  if (T_max <= 0) throw std::invalid_argument("CosineAnnealingLR: T_max must be positive");
}

std::vector<double> CosineAnnealingLR::get_lr() {
  // torch 1.13 CosineAnnealingLR.get_lr, term by term (same evaluation order => same bits).
  constexpr double pi = std::numbers::pi;
  std::vector<double> lrs = group_lrs();
  const double e = static_cast<double>(last_epoch_), T = static_cast<double>(T_max);
  if (last_epoch_ == 0) return lrs;
  if (step_count_ == 1 && last_epoch_ > 0) {
    for (size_t i = 0; i < lrs.size(); ++i)
      lrs[i] = eta_min + (base_lrs_[i] - eta_min) * (1 + std::cos(e * pi / T)) / 2;
    return lrs;
  }
  if (py_mod(last_epoch_ - 1 - T_max, 2 * T_max) == 0) {
    for (size_t i = 0; i < lrs.size(); ++i)
      lrs[i] = lrs[i] + (base_lrs_[i] - eta_min) * (1 - std::cos(pi / T)) / 2;
    return lrs;
  }
  for (double& lr : lrs)
    lr = (1 + std::cos(pi * e / T)) / (1 + std::cos(pi * (e - 1) / T)) * (lr - eta_min) + eta_min;
  return lrs;
}

std::optional<std::vector<double>> CosineAnnealingLR::closed_form_lr() const {
  const double e = static_cast<double>(last_epoch_), T = static_cast<double>(T_max);
  return each_base(base_lrs_, [&](double b) {
    return eta_min + (b - eta_min) * (1 + std::cos(std::numbers::pi * e / T)) / 2;
  });
}

void CosineAnnealingLR::save_extra(SchedulerState& s) const {
  s.scalars["T_max"] = static_cast<double>(T_max);
  s.scalars["eta_min"] = eta_min;
}
void CosineAnnealingLR::load_extra(const SchedulerState& s) {
  restore_scalar(s, "T_max", T_max);
  restore_scalar(s, "eta_min", eta_min);
  check_args();
}

// ---------------------------------------------------------------------------
// LinearLR
// ---------------------------------------------------------------------------
LinearLR::LinearLR(optim::Optimizer& opt, double start, double end, int64_t total, int64_t last_epoch)
    : LRScheduler(opt, last_epoch, true), start_factor(start), end_factor(end), total_iters(total) {
  check_args();
  initial_step();
}

void LinearLR::check_args() const {
  if (!(start_factor <= 1.0 && start_factor >= 0))
    throw std::invalid_argument("LinearLR: Starting multiplicative factor expected to be between 0 and 1.");
  if (!(end_factor <= 1.0 && end_factor >= 0))
    throw std::invalid_argument("LinearLR: Ending multiplicative factor expected to be between 0 and 1.");
  if (total_iters < 0) throw std::invalid_argument("LinearLR: total_iters must be non-negative");
}

std::vector<double> LinearLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (last_epoch_ == 0) {
    for (double& lr : lrs) lr = lr * start_factor;
    return lrs;
  }
  if (last_epoch_ > total_iters) return lrs;
  const double d = end_factor - start_factor;
  for (double& lr : lrs)
    lr = lr * (1. + d / (static_cast<double>(total_iters) * start_factor +
                         static_cast<double>(last_epoch_ - 1) * d));
  return lrs;
}

std::optional<std::vector<double>> LinearLR::closed_form_lr() const {
  const double done = static_cast<double>(std::min(total_iters, last_epoch_));
  return each_base(base_lrs_, [&](double b) {
    return b * (start_factor + (end_factor - start_factor) * done / static_cast<double>(total_iters));
  });
}

void LinearLR::save_extra(SchedulerState& s) const {
  s.scalars["start_factor"] = start_factor;
  s.scalars["end_factor"] = end_factor;
  s.scalars["total_iters"] = static_cast<double>(total_iters);
}
void LinearLR::load_extra(const SchedulerState& s) {
  restore_scalar(s, "start_factor", start_factor);
  restore_scalar(s, "end_factor", end_factor);
  restore_scalar(s, "total_iters", total_iters);
  check_args();
}

// ---------------------------------------------------------------------------
// ConstantLR
// ---------------------------------------------------------------------------
ConstantLR::ConstantLR(optim::Optimizer& opt, double factor_, int64_t total, int64_t last_epoch)
    : LRScheduler(opt, last_epoch, true), factor(factor_), total_iters(total) {
  check_args();
  initial_step();
}

void ConstantLR::check_args() const {
  if (factor > 1.0 || factor < 0 || std::isnan(factor))
    throw std::invalid_argument("ConstantLR: Constant multiplicative factor expected to be between 0 and 1.");
  if (factor == 0)  // torch divides by it at total_iters
    throw std::invalid_argument("ConstantLR: factor 0 can't be divided out at total_iters; use a factor in (0, 1]");
}

std::vector<double> ConstantLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (last_epoch_ == 0) {
    for (double& lr : lrs) lr = lr * factor;
  } else if (last_epoch_ == total_iters) {
    for (double& lr : lrs) lr = lr * (1.0 / factor);
  }
  return lrs;
}

std::optional<std::vector<double>> ConstantLR::closed_form_lr() const {
  const double restored = last_epoch_ >= total_iters ? 1 - factor : 0.0;
  return each_base(base_lrs_, [&](double b) { return b * (factor + restored); });
}

void ConstantLR::save_extra(SchedulerState& s) const {
  s.scalars["factor"] = factor;
  s.scalars["total_iters"] = static_cast<double>(total_iters);
}
void ConstantLR::load_extra(const SchedulerState& s) {
  restore_scalar(s, "factor", factor);
  restore_scalar(s, "total_iters", total_iters);
  check_args();
}

// ---------------------------------------------------------------------------
// PolynomialLR
// ---------------------------------------------------------------------------
PolynomialLR::PolynomialLR(optim::Optimizer& opt, int64_t total, double power_, int64_t last_epoch)
    : LRScheduler(opt, last_epoch, true), total_iters(total), power(power_) {
  check_args();
  initial_step();
}

void PolynomialLR::check_args() const {
  if (total_iters <= 0) throw std::invalid_argument("PolynomialLR: total_iters must be positive");
}

std::vector<double> PolynomialLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (last_epoch_ == 0 || last_epoch_ > total_iters) return lrs;
  const double e = static_cast<double>(last_epoch_), T = static_cast<double>(total_iters);
  const double decay = std::pow((1.0 - e / T) / (1.0 - (e - 1) / T), power);
  for (double& lr : lrs) lr = lr * decay;
  return lrs;
}

std::optional<std::vector<double>> PolynomialLR::closed_form_lr() const {
  const double T = static_cast<double>(total_iters);
  const double left = 1.0 - static_cast<double>(std::min(total_iters, last_epoch_)) / T;
  return each_base(base_lrs_, [&](double b) { return b * std::pow(left, power); });
}

void PolynomialLR::save_extra(SchedulerState& s) const {
  s.scalars["total_iters"] = static_cast<double>(total_iters);
  s.scalars["power"] = power;
}
void PolynomialLR::load_extra(const SchedulerState& s) {
  restore_scalar(s, "total_iters", total_iters);
  restore_scalar(s, "power", power);
  check_args();
}

// ---- registrations --------------------------------------------------------------------------
namespace {
using A = AttrSchema;
using Ptr = std::unique_ptr<LRScheduler>;
A gamma_attr(std::optional<double> def) {
  A a = def ? A::floating("gamma", *def) : A::floating("gamma").req();
  return a.above(0).describe("multiplicative factor of lr decay");
}
std::string increasing(const AttrMap& m) { return strictly_increasing(m, "milestones"); }
const RegisterScheduler kNone({"none", "", "constant learning rate", {}, nullptr, nullptr});
const RegisterScheduler kStep({
    "step", "StepLR", "torch.optim.lr_scheduler.StepLR: lr *= gamma every step_size steps",
    {A::integer("step_size").req().at_least(1).describe("period of lr decay"), gamma_attr(0.1)}, nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext&) -> Ptr {
      return std::make_unique<StepLR>(o, attr_int(c.attrs, "step_size"), attr_float(c.attrs, "gamma"));
    },
    false, false, {{"step_size", int64_t{3}}}});
const RegisterScheduler kMultiStep({
    "multi_step", "MultiStepLR", "MultiStepLR: lr *= gamma at each milestone",
    {A::int_list("milestones").req().length(1, 100000).at_least(1)
         .describe("strictly increasing step/epoch indices"),
     gamma_attr(0.1)},
    increasing,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext&) -> Ptr {
      return std::make_unique<MultiStepLR>(o, attr_ints(c.attrs, "milestones"), attr_float(c.attrs, "gamma"));
    },
    false, false, {{"milestones", std::vector<int64_t>{2, 5}}}});
const RegisterScheduler kExponential({
    "exponential", "ExponentialLR", "ExponentialLR: lr *= gamma every step", {gamma_attr(std::nullopt)}, nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext&) -> Ptr {
      return std::make_unique<ExponentialLR>(o, attr_float(c.attrs, "gamma"));
    },
    false, false, {{"gamma", 0.9}}});
constexpr int64_t kAuto = 0;
const RegisterScheduler kCosine({
    "cosine_annealing", "CosineAnnealingLR", "CosineAnnealingLR from lr to eta_min over T_max steps",
    {A::integer("T_max", kAuto).at_least(1).keyword("auto", kAuto)
         .describe("half period; auto = train.epochs, or total steps for interval step"),
     A::floating("eta_min", 0.0).at_least(0).describe("minimum lr")},
    nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext& ctx) -> Ptr {
      int64_t t_max = attr_int(c.attrs, "T_max");
      if (t_max == kAuto) t_max = std::max<int64_t>(ctx.total_steps, 1);
      return std::make_unique<CosineAnnealingLR>(o, t_max, attr_float(c.attrs, "eta_min"));
    }});
const RegisterScheduler kLinear({
    "linear", "LinearLR", "LinearLR: factor goes linearly from start_factor to end_factor",
    {A::floating("start_factor", 1.0 / 3).above(0).at_most(1).describe("factor at the first step"),
     A::floating("end_factor", 1.0).range(0, 1).describe("factor after total_iters steps"),
     A::integer("total_iters", 5).at_least(1).describe("steps to reach end_factor")},
    nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext&) -> Ptr {
      return std::make_unique<LinearLR>(o, attr_float(c.attrs, "start_factor"), attr_float(c.attrs, "end_factor"),
                                        attr_int(c.attrs, "total_iters"));
    }});
const RegisterScheduler kConstant({
    "constant", "ConstantLR", "torch.optim.lr_scheduler.ConstantLR: lr * factor until total_iters steps",
    {A::floating("factor", 1.0 / 3).above(0).at_most(1).describe("lr multiplier before total_iters"),
     A::integer("total_iters", 5).at_least(1).describe("steps with the reduced lr")},
    nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext&) -> Ptr {
      return std::make_unique<ConstantLR>(o, attr_float(c.attrs, "factor"), attr_int(c.attrs, "total_iters"));
    }});
const RegisterScheduler kPolynomial({
    "polynomial", "PolynomialLR",
    "torch.optim.lr_scheduler.PolynomialLR: lr * (1 - step / total_iters) ** power, then 0",
    {A::integer("total_iters", 5).at_least(1).describe("steps to decay the lr to 0"),
     A::floating("power", 1.0).at_least(0).describe("power of the polynomial")},
    nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext&) -> Ptr {
      return std::make_unique<PolynomialLR>(o, attr_int(c.attrs, "total_iters"), attr_float(c.attrs, "power"));
    }});
}  // namespace

}  // namespace dl::sched
