#include "engine/sched/cyclic.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numbers>
#include <stdexcept>

#include "engine/sched/registry.h"

namespace dl::sched {
namespace {

std::string num(double v) { return optim::option_str(v); }

// torch's _format_param: one value per param group, or a single value for all of them.
std::vector<double> per_group(const std::string& who, const char* name, const std::vector<double>& v, size_t n) {
  if (v.size() == 1) return std::vector<double>(n, v[0]);
  if (v.size() != n)
    throw std::invalid_argument(who + ": expected " + std::to_string(n) + " values for " + name + ", got " +
                                std::to_string(v.size()));
  return v;
}

// The option cycled as momentum: beta1 where the optimizer has betas (torch: 'betas' in
// optimizer.defaults), else momentum; neither is an error, as in torch.
std::string momentum_option(const optim::Optimizer& opt, const std::string& who) {
  if (opt.defaults().count("beta1")) return "beta1";
  if (opt.defaults().count("momentum")) return "momentum";
  throw std::invalid_argument(who + ": optimizer must support momentum with `cycle_momentum` option enabled (" +
                              opt.type() + " has neither momentum nor betas; set cycle_momentum to false)");
}

void set_option(optim::Optimizer& opt, const std::string& key, const std::vector<double>& values) {
  auto& groups = opt.param_groups();
  for (size_t i = 0; i < groups.size(); ++i) groups[i].options[key] = values[i];
}

// State helpers shared by CyclicLR and OneCycleLR.
void restore_list(const SchedulerState& s, const char* key, std::vector<double>& out) {
  if (auto it = s.lists.find(key); it != s.lists.end()) out = it->second;
}
void restore_string(const SchedulerState& s, const char* key, std::string& out) {
  if (auto it = s.strings.find(key); it != s.strings.end()) out = it->second;
}
void check_sizes(const std::string& who, size_t n,
                 std::initializer_list<std::pair<const char*, const std::vector<double>*>> lists) {
  for (const auto& [name, v] : lists)
    if (v->size() != n)
      throw std::invalid_argument(who + " state: " + name + " has " + std::to_string(v->size()) + " entries for " +
                                  std::to_string(n) + " param groups");
}

// CyclicLR sets every group's lr to base_lr (and the momentum to base_momentum) before the
// LRScheduler constructor records initial_lr, as torch does; everything is checked first.
optim::Optimizer& cyclic_start(optim::Optimizer& opt, const CyclicOptions& o) {
  const size_t n = opt.param_groups().size();
  const std::vector<double> base = per_group("CyclicLR", "base_lr", o.base_lr, n);
  per_group("CyclicLR", "max_lr", o.max_lr, n);
  if (o.step_size_up < 1) throw std::invalid_argument("CyclicLR: step_size_up must be >= 1, got " + std::to_string(o.step_size_up));
  if (o.step_size_down < 0)
    throw std::invalid_argument("CyclicLR: step_size_down must be >= 1 (or 0 for step_size_up), got " +
                                std::to_string(o.step_size_down));
  if (o.mode != "triangular" && o.mode != "triangular2" && o.mode != "exp_range")
    throw std::invalid_argument("CyclicLR: mode '" + o.mode + "' is invalid (expected triangular, triangular2 or exp_range)");
  std::string key;
  std::vector<double> base_m;
  if (o.cycle_momentum) {
    key = momentum_option(opt, "CyclicLR");
    base_m = per_group("CyclicLR", "base_momentum", o.base_momentum, n);
    per_group("CyclicLR", "max_momentum", o.max_momentum, n);
  }
  set_option(opt, "lr", base);
  if (o.cycle_momentum) set_option(opt, key, base_m);
  return opt;
}

// OneCycleLR sets initial_lr = max_lr / div_factor (overwriting an earlier scheduler's) and
// the momentum to max_momentum before the LRScheduler constructor, as torch does.
optim::Optimizer& one_cycle_start(optim::Optimizer& opt, const OneCycleOptions& o) {
  const size_t n = opt.param_groups().size();
  if (o.total_steps <= 0)
    throw std::invalid_argument("OneCycleLR: Expected positive integer total_steps, but got " + std::to_string(o.total_steps));
  if (!(o.pct_start >= 0 && o.pct_start <= 1))
    throw std::invalid_argument("OneCycleLR: Expected float between 0 and 1 pct_start, but got " + num(o.pct_start));
  if (o.anneal_strategy != "cos" && o.anneal_strategy != "linear")
    throw std::invalid_argument("OneCycleLR: anneal_strategy must by one of 'cos' or 'linear', instead got " +
                                o.anneal_strategy);
  if (!(o.div_factor > 0) || !(o.final_div_factor > 0))
    throw std::invalid_argument("OneCycleLR: div_factor and final_div_factor must be positive, got " +
                                num(o.div_factor) + " and " + num(o.final_div_factor));
  const std::vector<double> max_lr = per_group("OneCycleLR", "max_lr", o.max_lr, n);
  std::string key;
  std::vector<double> max_m;
  if (o.cycle_momentum) {
    key = momentum_option(opt, "OneCycleLR");
    max_m = per_group("OneCycleLR", "max_momentum", o.max_momentum, n);
    per_group("OneCycleLR", "base_momentum", o.base_momentum, n);
  }
  std::vector<double> initial;
  for (double m : max_lr) initial.push_back(m / o.div_factor);
  set_option(opt, "initial_lr", initial);
  if (o.cycle_momentum) set_option(opt, key, max_m);
  return opt;
}

}  // namespace

void MomentumCycle::set(optim::Optimizer& opt, const std::vector<double>& values) const {
  if (enabled) set_option(opt, key, values);
}

void MomentumCycle::save(SchedulerState& s) const {
  s.scalars["cycle_momentum"] = enabled ? 1.0 : 0.0;
  if (!enabled) return;
  s.strings["momentum_key"] = key;
  s.lists["base_momentums"] = base;
  s.lists["max_momentums"] = max;
}

void MomentumCycle::load(const SchedulerState& s) {
  restore_scalar(s, "cycle_momentum", enabled);
  restore_string(s, "momentum_key", key);
  restore_list(s, "base_momentums", base);
  restore_list(s, "max_momentums", max);
}

void MomentumCycle::check(const optim::Optimizer& opt, const std::string& who) const {
  if (!enabled) return;
  if ((key != "momentum" && key != "beta1") || !opt.defaults().count(key))
    throw std::invalid_argument(who + " state: momentum_key '" + key + "' is not an option of " + opt.type());
  check_sizes(who, opt.param_groups().size(), {{"base_momentums", &base}, {"max_momentums", &max}});
}

// ---------------------------------------------------------------------------
// CyclicLR
// ---------------------------------------------------------------------------
CyclicLR::CyclicLR(optim::Optimizer& opt, const CyclicOptions& o)
    : LRScheduler(cyclic_start(opt, o), /*last_epoch=*/-1, /*epoch_based=*/true) {
  const size_t n = opt_.param_groups().size();
  max_lrs = per_group(type(), "max_lr", o.max_lr, n);
  const double up = static_cast<double>(o.step_size_up);
  const double down = o.step_size_down > 0 ? static_cast<double>(o.step_size_down) : up;
  total_size = up + down;
  step_ratio = up / total_size;
  mode = o.mode;
  gamma = o.gamma;
  scale_mode = mode == "exp_range" ? "iterations" : "cycle";
  momentum.enabled = o.cycle_momentum;
  if (momentum.enabled) {
    momentum.key = momentum_option(opt_, type());
    for (const auto& g : opt_.param_groups()) momentum.base.push_back(g.get(momentum.key));
    momentum.max = per_group(type(), "max_momentum", o.max_momentum, n);
  }
  // torch: the initial step runs with base_lrs = the groups' initial_lr (base_lr unless an
  // earlier scheduler recorded another one); the cycle uses base_lr from then on.
  initial_step();
  base_lrs_ = per_group(type(), "base_lr", o.base_lr, n);
}

double CyclicLR::scale_fn(double x) const {
  if (mode == "triangular") return 1.;
  if (mode == "triangular2") return 1 / std::pow(2., x - 1);
  return std::pow(gamma, x);  // exp_range
}

std::vector<double> CyclicLR::get_lr() {
  const double e = static_cast<double>(last_epoch_);
  const double cycle = std::floor(1 + e / total_size);
  const double x = 1. + e / total_size - cycle;
  const double scale_factor = x <= step_ratio ? x / step_ratio : (x - 1) / (step_ratio - 1);
  const double scale = scale_fn(scale_mode == "cycle" ? cycle : e);
  std::vector<double> lrs;
  for (size_t i = 0; i < base_lrs_.size(); ++i) {
    const double base_height = (max_lrs[i] - base_lrs_[i]) * scale_factor;
    lrs.push_back(base_lrs_[i] + base_height * scale);
  }
  if (momentum.enabled) {
    std::vector<double> m;
    for (size_t i = 0; i < momentum.max.size(); ++i) {
      const double base_height = (momentum.max[i] - momentum.base[i]) * scale_factor;
      m.push_back(momentum.max[i] - base_height * scale);
    }
    momentum.set(opt_, m);
  }
  return lrs;
}

void CyclicLR::check_state() const {
  if (mode != "triangular" && mode != "triangular2" && mode != "exp_range")
    throw std::invalid_argument("CyclicLR state: mode '" + mode + "' is invalid");
  if (scale_mode != "cycle" && scale_mode != "iterations")
    throw std::invalid_argument("CyclicLR state: scale_mode '" + scale_mode + "' is invalid");
  if (!(total_size >= 2) || !(step_ratio > 0 && step_ratio < 1))
    throw std::invalid_argument("CyclicLR state: total_size " + num(total_size) + " and step_ratio " + num(step_ratio) +
                                " do not describe a cycle");
  check_sizes(type(), opt_.param_groups().size(), {{"max_lrs", &max_lrs}});
  momentum.check(opt_, type());
}

void CyclicLR::save_extra(SchedulerState& s) const {
  s.lists["max_lrs"] = max_lrs;
  s.scalars["total_size"] = total_size;
  s.scalars["step_ratio"] = step_ratio;
  s.strings["mode"] = mode;
  s.strings["scale_mode"] = scale_mode;
  s.scalars["gamma"] = gamma;
  momentum.save(s);
}

void CyclicLR::load_extra(const SchedulerState& s) {
  restore_list(s, "max_lrs", max_lrs);
  restore_scalar(s, "total_size", total_size);
  restore_scalar(s, "step_ratio", step_ratio);
  restore_string(s, "mode", mode);
  restore_string(s, "scale_mode", scale_mode);
  restore_scalar(s, "gamma", gamma);
  momentum.load(s);
  check_state();
}

// ---------------------------------------------------------------------------
// OneCycleLR
// ---------------------------------------------------------------------------
OneCycleLR::OneCycleLR(optim::Optimizer& opt, const OneCycleOptions& o)
    : LRScheduler(one_cycle_start(opt, o), /*last_epoch=*/-1, /*epoch_based=*/true),
      total_steps(o.total_steps),
      pct_start(o.pct_start),
      anneal_strategy(o.anneal_strategy),
      three_phase(o.three_phase) {
  const size_t n = opt_.param_groups().size();
  max_lrs = per_group(type(), "max_lr", o.max_lr, n);
  for (double initial : base_lrs_) min_lrs.push_back(initial / o.final_div_factor);
  momentum.enabled = o.cycle_momentum;
  if (momentum.enabled) {
    momentum.key = momentum_option(opt_, type());
    momentum.max = per_group(type(), "max_momentum", o.max_momentum, n);
    momentum.base = per_group(type(), "base_momentum", o.base_momentum, n);
  }
  initial_step();
}

std::vector<OneCycleLR::Phase> OneCycleLR::phases() const {
  const double T = static_cast<double>(total_steps);
  using L = Level;
  if (three_phase)
    return {{pct_start * T - 1, L::Initial, L::Max, L::MaxMomentum, L::BaseMomentum},
            {2 * pct_start * T - 2, L::Max, L::Initial, L::BaseMomentum, L::MaxMomentum},
            {T - 1, L::Initial, L::Min, L::MaxMomentum, L::MaxMomentum}};
  return {{pct_start * T - 1, L::Initial, L::Max, L::MaxMomentum, L::BaseMomentum},
          {T - 1, L::Max, L::Min, L::BaseMomentum, L::MaxMomentum}};
}

double OneCycleLR::level(Level l, size_t g) const {
  switch (l) {
    case Level::Initial: return base_lrs_[g];  // the group's initial_lr
    case Level::Max: return max_lrs[g];
    case Level::Min: return min_lrs[g];
    case Level::MaxMomentum: return momentum.max[g];
    case Level::BaseMomentum: return momentum.base[g];
  }
  return 0;
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  if (anneal_strategy == "cos") {
    const double cos_out = std::cos(std::numbers::pi * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
  }
  return (end - start) * pct + start;
}

std::vector<double> OneCycleLR::get_lr() {
  if (last_epoch_ > total_steps)
    throw std::invalid_argument("OneCycleLR: Tried to step " + std::to_string(last_epoch_ + 1) +
                                " times. The specified number of total steps is " + std::to_string(total_steps));
  const double step_num = static_cast<double>(last_epoch_);
  const std::vector<Phase> ph = phases();
  std::vector<double> lrs, m;
  for (size_t g = 0; g < base_lrs_.size(); ++g) {
    double start_step = 0;
    for (size_t i = 0; i < ph.size(); ++i) {
      const double end_step = ph[i].end_step;
      if (step_num <= end_step || i + 1 == ph.size()) {
        const double pct = (step_num - start_step) / (end_step - start_step);
        lrs.push_back(anneal(level(ph[i].start_lr, g), level(ph[i].end_lr, g), pct));
        if (momentum.enabled) m.push_back(anneal(level(ph[i].start_momentum, g), level(ph[i].end_momentum, g), pct));
        break;
      }
      start_step = end_step;
    }
  }
  momentum.set(opt_, m);
  return lrs;
}

void OneCycleLR::check_state() const {
  if (total_steps <= 0 || !(pct_start >= 0 && pct_start <= 1) ||
      (anneal_strategy != "cos" && anneal_strategy != "linear"))
    throw std::invalid_argument("OneCycleLR state: total_steps " + std::to_string(total_steps) + ", pct_start " +
                                num(pct_start) + ", anneal_strategy '" + anneal_strategy + "' are not a valid cycle");
  check_sizes(type(), opt_.param_groups().size(), {{"max_lrs", &max_lrs}, {"min_lrs", &min_lrs}});
  momentum.check(opt_, type());
}

void OneCycleLR::save_extra(SchedulerState& s) const {
  s.scalars["total_steps"] = static_cast<double>(total_steps);
  s.scalars["pct_start"] = pct_start;
  s.scalars["three_phase"] = three_phase ? 1.0 : 0.0;
  s.strings["anneal_strategy"] = anneal_strategy;
  s.lists["max_lrs"] = max_lrs;
  s.lists["min_lrs"] = min_lrs;
  momentum.save(s);
}

void OneCycleLR::load_extra(const SchedulerState& s) {
  restore_scalar(s, "total_steps", total_steps);
  restore_scalar(s, "pct_start", pct_start);
  restore_scalar(s, "three_phase", three_phase);
  restore_string(s, "anneal_strategy", anneal_strategy);
  restore_list(s, "max_lrs", max_lrs);
  restore_list(s, "min_lrs", min_lrs);
  momentum.load(s);
  check_state();
}

// ---------------------------------------------------------------------------
// CosineAnnealingWarmRestarts
// ---------------------------------------------------------------------------
CosineAnnealingWarmRestarts::CosineAnnealingWarmRestarts(optim::Optimizer& opt, int64_t T_0_, int64_t T_mult_,
                                                         double eta_min_)
    : LRScheduler(opt, /*last_epoch=*/-1, /*epoch_based=*/true),
      T_0(T_0_), T_i(T_0_), T_mult(T_mult_), eta_min(eta_min_), T_cur(-1) {
  check_args();
  initial_step();
}

void CosineAnnealingWarmRestarts::check_args() const {
  if (T_0 <= 0) throw std::invalid_argument(type() + ": Expected positive integer T_0, but got " + std::to_string(T_0));
  if (T_mult < 1)
    throw std::invalid_argument(type() + ": Expected integer T_mult >= 1, but got " + std::to_string(T_mult));
  if (T_i < T_0) throw std::invalid_argument(type() + " state: T_i " + std::to_string(T_i) + " is below T_0");
}

// torch's step() overrides _LRScheduler.step and does not count _step_count.
void CosineAnnealingWarmRestarts::step() {
  if (last_epoch_ < 0) return step_to(0);
  T_cur = T_cur + 1;
  if (T_cur >= static_cast<double>(T_i)) {
    T_cur = T_cur - static_cast<double>(T_i);
    T_i = T_i * T_mult;
  }
  apply(last_epoch_ + 1);
}

void CosineAnnealingWarmRestarts::step_to(int64_t epoch) {
  if (epoch < 0) throw std::invalid_argument(type() + ": Expected non-negative epoch, but got " + std::to_string(epoch));
  if (epoch >= T_0) {
    if (T_mult == 1) {
      T_cur = static_cast<double>(epoch % T_0);
    } else {
      const double e = static_cast<double>(epoch), t0 = static_cast<double>(T_0), m = static_cast<double>(T_mult);
      const auto n = static_cast<int64_t>(std::log(e / t0 * (m - 1) + 1) / std::log(m));
      int64_t mult_n = 1;
      for (int64_t k = 0; k < n; ++k) mult_n *= T_mult;
      T_cur = e - static_cast<double>(T_0 * (mult_n - 1)) / (m - 1);
      T_i = T_0 * mult_n;
    }
  } else {
    T_i = T_0;
    T_cur = static_cast<double>(epoch);
  }
  apply(epoch);
}

void CosineAnnealingWarmRestarts::apply(int64_t epoch) {
  last_epoch_ = epoch;
  set_group_lrs(get_lr());
  last_lr_ = group_lrs();
}

std::vector<double> CosineAnnealingWarmRestarts::get_lr() {
  std::vector<double> lrs;
  for (double base : base_lrs_)
    lrs.push_back(eta_min + (base - eta_min) * (1 + std::cos(std::numbers::pi * T_cur / static_cast<double>(T_i))) / 2);
  return lrs;
}

void CosineAnnealingWarmRestarts::save_extra(SchedulerState& s) const {
  s.scalars["T_0"] = static_cast<double>(T_0);
  s.scalars["T_i"] = static_cast<double>(T_i);
  s.scalars["T_mult"] = static_cast<double>(T_mult);
  s.scalars["eta_min"] = eta_min;
  s.scalars["T_cur"] = T_cur;
}

void CosineAnnealingWarmRestarts::load_extra(const SchedulerState& s) {
  restore_scalar(s, "T_0", T_0);
  restore_scalar(s, "T_i", T_i);
  restore_scalar(s, "T_mult", T_mult);
  restore_scalar(s, "eta_min", eta_min);
  restore_scalar(s, "T_cur", T_cur);
  check_args();
}

// ---- registrations --------------------------------------------------------------------------
namespace {
using A = AttrSchema;
using Ptr = std::unique_ptr<LRScheduler>;
constexpr int64_t kAuto = 0;

A momentum_attr(const char* name, double def, const char* what) {
  return A::floating(name, def).range(0, 1).describe(what);
}
A cycle_momentum_attr() {
  return A::boolean("cycle_momentum", true)
      .describe("cycle the optimizer's momentum (or beta1) inversely to the lr");
}

const RegisterScheduler kCyclic({
    "cyclic", "CyclicLR", "torch.optim.lr_scheduler.CyclicLR: lr cycles between base_lr and max_lr (per step)",
    {A::floating("base_lr").req().at_least(0).describe("lower lr boundary (sets the lr)"),
     A::floating("max_lr").req().at_least(0).describe("upper lr boundary"),
     A::integer("step_size_up", 2000).at_least(1).describe("steps in the increasing half of a cycle"),
     A::integer("step_size_down", kAuto).at_least(1).keyword("auto", kAuto)
         .describe("steps in the decreasing half; auto = step_size_up"),
     A::choice("mode", {"triangular", "triangular2", "exp_range"}, "triangular")
         .describe("amplitude scaling: none, halved every cycle, gamma ** step"),
     A::floating("gamma", 1.0).above(0).describe("exp_range: amplitude factor per step"),
     cycle_momentum_attr(),
     momentum_attr("base_momentum", 0.8, "momentum at the lr peak"),
     momentum_attr("max_momentum", 0.9, "momentum at the cycle start")},
    nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext&) -> Ptr {
      CyclicOptions p;
      p.base_lr = {attr_float(c.attrs, "base_lr")};
      p.max_lr = {attr_float(c.attrs, "max_lr")};
      p.step_size_up = attr_int(c.attrs, "step_size_up");
      p.step_size_down = attr_int(c.attrs, "step_size_down");
      p.mode = attr_string(c.attrs, "mode");
      p.gamma = attr_float(c.attrs, "gamma");
      p.cycle_momentum = attr_bool(c.attrs, "cycle_momentum");
      p.base_momentum = {attr_float(c.attrs, "base_momentum")};
      p.max_momentum = {attr_float(c.attrs, "max_momentum")};
      return std::make_unique<CyclicLR>(o, p);
    },
    /*takes_children=*/false, /*metric_driven=*/false, /*example=*/{{"base_lr", 0.01}, {"max_lr", 0.1}}});

const RegisterScheduler kOneCycle({
    "one_cycle", "OneCycleLR", "torch.optim.lr_scheduler.OneCycleLR: the 1cycle policy (per step)",
    {A::floating("max_lr").req().above(0).describe("peak lr"),
     A::integer("total_steps", kAuto).at_least(1).keyword("auto", kAuto)
         .describe("steps in the cycle; auto = the run's scheduler steps (torch: epochs * steps_per_epoch)"),
     A::floating("pct_start", 0.3).range(0, 1).describe("fraction of the cycle spent increasing the lr"),
     A::choice("anneal_strategy", {"cos", "linear"}, "cos").describe("annealing shape"),
     cycle_momentum_attr(),
     momentum_attr("base_momentum", 0.85, "momentum at the lr peak"),
     momentum_attr("max_momentum", 0.95, "momentum at the start and end"),
     A::floating("div_factor", 25.0).above(0).describe("initial lr = max_lr / div_factor"),
     A::floating("final_div_factor", 1e4).above(0).describe("min lr = initial lr / final_div_factor"),
     A::boolean("three_phase", false).describe("the paper's three phases instead of fastai's two")},
    nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext& ctx) -> Ptr {
      OneCycleOptions p;
      p.max_lr = {attr_float(c.attrs, "max_lr")};
      p.total_steps = attr_int(c.attrs, "total_steps");
      if (p.total_steps == kAuto) p.total_steps = std::max<int64_t>(ctx.total_steps, 1);
      p.pct_start = attr_float(c.attrs, "pct_start");
      p.anneal_strategy = attr_string(c.attrs, "anneal_strategy");
      p.cycle_momentum = attr_bool(c.attrs, "cycle_momentum");
      p.base_momentum = {attr_float(c.attrs, "base_momentum")};
      p.max_momentum = {attr_float(c.attrs, "max_momentum")};
      p.div_factor = attr_float(c.attrs, "div_factor");
      p.final_div_factor = attr_float(c.attrs, "final_div_factor");
      p.three_phase = attr_bool(c.attrs, "three_phase");
      return std::make_unique<OneCycleLR>(o, p);
    },
    /*takes_children=*/false, /*metric_driven=*/false, /*example=*/{{"max_lr", 0.1}}});

const RegisterScheduler kWarmRestarts({
    "cosine_annealing_warm_restarts", "CosineAnnealingWarmRestarts",
    "torch.optim.lr_scheduler.CosineAnnealingWarmRestarts: cosine annealing restarted every T_i steps (SGDR)",
    {A::integer("T_0").req().at_least(1).describe("steps until the first restart"),
     A::integer("T_mult", 1).at_least(1).describe("T_i *= T_mult after each restart"),
     A::floating("eta_min", 0.0).at_least(0).describe("minimum lr")},
    nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext&) -> Ptr {
      return std::make_unique<CosineAnnealingWarmRestarts>(o, attr_int(c.attrs, "T_0"), attr_int(c.attrs, "T_mult"),
                                                           attr_float(c.attrs, "eta_min"));
    },
    /*takes_children=*/false, /*metric_driven=*/false, /*example=*/{{"T_0", int64_t{10}}}});
}  // namespace

}  // namespace dl::sched
