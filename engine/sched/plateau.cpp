#include "engine/sched/plateau.h"

#include <memory>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "engine/sched/registry.h"

namespace dl::sched {

ReduceLROnPlateau::ReduceLROnPlateau(optim::Optimizer& opt, PlateauOptions o)
    : LRScheduler(opt, /*last_epoch=*/0, /*epoch_based=*/false), options(std::move(o)) {
  const size_t n = opt_.param_groups().size();
  if (options.min_lrs.empty()) options.min_lrs.assign(n, options.min_lr);
  check_options();
  best = mode_worse();
}

void ReduceLROnPlateau::check_options() const {
  if (options.factor >= 1.0) throw std::invalid_argument("ReduceLROnPlateau: Factor should be < 1.0.");
  if (options.min_lrs.size() != opt_.param_groups().size())
    throw std::invalid_argument("ReduceLROnPlateau: expected " + std::to_string(opt_.param_groups().size()) +
                                " min_lrs, got " + std::to_string(options.min_lrs.size()));
  if (options.mode != "min" && options.mode != "max")
    throw std::invalid_argument("ReduceLROnPlateau: mode " + options.mode + " is unknown!");
  if (options.threshold_mode != "rel" && options.threshold_mode != "abs")
    throw std::invalid_argument("ReduceLROnPlateau: threshold mode " + options.threshold_mode + " is unknown!");
}

double ReduceLROnPlateau::mode_worse() const {
  const double inf = std::numeric_limits<double>::infinity();
  return options.mode == "min" ? inf : -inf;
}

bool ReduceLROnPlateau::is_better(double a, double b) const {
  const double t = options.threshold;
  if (options.mode == "min" && options.threshold_mode == "rel") return a < b * (1. - t);
  if (options.mode == "min") return a < b - t;
  if (options.threshold_mode == "rel") return a > b * (t + 1.);
  return a > b + t;
}

void ReduceLROnPlateau::step() {
  throw std::logic_error("ReduceLROnPlateau.step() needs the metric: call step(metric)");
}

void ReduceLROnPlateau::step(double current) {
  ++last_epoch_;
  if (is_better(current, best)) {
    best = current;
    num_bad_epochs = 0;
  } else {
    ++num_bad_epochs;
  }
  if (in_cooldown()) {
    --cooldown_counter;
    num_bad_epochs = 0;  // ignore any bad epochs in cooldown
  }
  if (num_bad_epochs > options.patience) {
    auto& groups = opt_.param_groups();
    for (size_t i = 0; i < groups.size(); ++i) {
      double old_lr = groups[i].get("lr");
      double new_lr = std::max(old_lr * options.factor, options.min_lrs[i]);
      if (old_lr - new_lr > options.eps) groups[i].options["lr"] = new_lr;
    }
    cooldown_counter = options.cooldown;
    num_bad_epochs = 0;
  }
  last_lr_ = group_lrs();
}

void ReduceLROnPlateau::save_extra(SchedulerState& s) const {
  s.scalars["factor"] = options.factor;
  s.scalars["patience"] = static_cast<double>(options.patience);
  s.scalars["threshold"] = options.threshold;
  s.scalars["cooldown"] = static_cast<double>(options.cooldown);
  s.scalars["eps"] = options.eps;
  s.scalars["best"] = best;
  s.scalars["num_bad_epochs"] = static_cast<double>(num_bad_epochs);
  s.scalars["cooldown_counter"] = static_cast<double>(cooldown_counter);
  s.lists["min_lrs"] = options.min_lrs;
  s.strings["mode"] = options.mode;
  s.strings["threshold_mode"] = options.threshold_mode;
}

void ReduceLROnPlateau::load_extra(const SchedulerState& s) {
  auto get = [&](const char* k, auto& out) {
    using T = std::remove_reference_t<decltype(out)>;
    if (auto it = s.scalars.find(k); it != s.scalars.end()) {
      if constexpr (std::is_integral_v<T>) out = state_int(s, k, it->second);
      else out = it->second;
    }
  };
  PlateauOptions o = options;
  get("factor", o.factor);
  get("patience", o.patience);
  get("threshold", o.threshold);
  get("cooldown", o.cooldown);
  get("eps", o.eps);
  if (auto it = s.lists.find("min_lrs"); it != s.lists.end()) o.min_lrs = it->second;
  if (auto it = s.strings.find("mode"); it != s.strings.end()) o.mode = it->second;
  if (auto it = s.strings.find("threshold_mode"); it != s.strings.end()) o.threshold_mode = it->second;
  std::swap(options, o);
  try {
    check_options();
  } catch (...) {
    std::swap(options, o);
    throw;
  }
  get("best", best);
  get("num_bad_epochs", num_bad_epochs);
  get("cooldown_counter", cooldown_counter);
}

namespace {
using A = AttrSchema;
const RegisterScheduler kPlateau({
    "reduce_on_plateau", "ReduceLROnPlateau", "ReduceLROnPlateau: lr *= factor when `metric` stops improving",
    {A::string("metric", "val/loss").describe("split/metric to watch (stepped after every evaluation)"),
     A::choice("mode", {"min", "max"}, "min").describe("improve = lower/higher"),
     A::floating("factor", 0.1).above(0).below(1).describe("lr multiplier on a plateau"),
     A::integer("patience", 10).at_least(0).describe("evaluations without improvement before reducing"),
     A::floating("threshold", 1e-4).at_least(0).describe("minimum change that counts as improvement"),
     A::choice("threshold_mode", {"rel", "abs"}, "rel").describe("threshold relative or absolute"),
     A::integer("cooldown", 0).at_least(0).describe("evaluations to wait after a reduction"),
     A::floating("min_lr", 0.0).at_least(0).describe("lower bound on lr"),
     A::floating("eps", 1e-8).at_least(0).describe("reductions smaller than eps are skipped")},
    nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext&) -> std::unique_ptr<LRScheduler> {
      PlateauOptions p;
      p.mode = attr_string(c.attrs, "mode");
      p.factor = attr_float(c.attrs, "factor");
      p.patience = attr_int(c.attrs, "patience");
      p.threshold = attr_float(c.attrs, "threshold");
      p.threshold_mode = attr_string(c.attrs, "threshold_mode");
      p.cooldown = attr_int(c.attrs, "cooldown");
      p.min_lr = attr_float(c.attrs, "min_lr");
      p.eps = attr_float(c.attrs, "eps");
      return std::make_unique<ReduceLROnPlateau>(o, p);
    },
    /*takes_children=*/false, /*metric_driven=*/true});
}  // namespace

}  // namespace dl::sched
