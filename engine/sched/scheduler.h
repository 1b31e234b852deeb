// Learning-rate schedulers with torch.optim.lr_scheduler (1.13) semantics.
//
//   optim::SGD opt(params, {.lr = 0.1});
//   sched::StepLR sched(opt, /*step_size=*/30, /*gamma=*/0.1);   // performs the initial step
//   for (epoch ...) { train(...); opt.step() ...; sched.step(); }
//
// Like PyTorch, constructing a scheduler performs its initial step (last_epoch becomes 0) and
// records each group's "initial_lr" option (kept when already present); base_lrs are those
// initial lrs. step() advances last_epoch and writes each group's "lr" using the recursive
// ("chainable") get_lr formulas of torch 1.13, which read the group's current lr — so the
// trajectory matches PyTorch's bit for bit, also when another scheduler or the user changes
// the lr in between.
//
// Resume like PyTorch: build the optimizer and the scheduler, then load the optimizer state
// (restores lr and initial_lr), then the scheduler state (last_epoch, base_lrs, counters).
//
// This file: the base and the chainable decays (StepLR ... PolynomialLR). The others:
// lambda.h (LambdaLR, MultiplicativeLR over expr.h expressions), cyclic.h (CyclicLR,
// OneCycleLR, CosineAnnealingWarmRestarts), compose.h (SequentialLR, ChainedScheduler),
// plateau.h (ReduceLROnPlateau); sched.h includes them all, registry.h builds them by name.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/optim/optimizer.h"

namespace dl::sched {

// Everything a scheduler needs to resume, under torch's attribute names
// ("last_epoch", "_step_count", "base_lrs", "_last_lr", "gamma", "T_max", "best", ...).
struct SchedulerState {
  std::string type;
  std::map<std::string, double> scalars;
  std::map<std::string, std::vector<double>> lists;
  std::map<std::string, std::string> strings;
};

// A state value (stored as a double) for an integer member: throws std::invalid_argument for
// NaN, fractions and values beyond int64 (casting those would be undefined behaviour).
int64_t state_int(const SchedulerState& s, const std::string& key, double v);
// Sets `out` from s.scalars[key] when present (integer members checked with state_int);
// absent keys leave `out` unchanged.
template <class T>
void restore_scalar(const SchedulerState& s, const std::string& key, T& out) {
  auto it = s.scalars.find(key);
  if (it == s.scalars.end()) return;
  if constexpr (std::is_same_v<T, bool>) out = it->second != 0;
  else if constexpr (std::is_integral_v<T>) out = state_int(s, key, it->second);
  else out = static_cast<T>(it->second);
}

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  virtual std::string type() const = 0;
  // True for schedulers driven by a metric (ReduceLROnPlateau): call step(metric) instead.
  virtual bool needs_metric() const { return false; }
  // Advances one epoch (or iteration, if stepped per batch) and sets each group's lr.
  virtual void step();
  // Metric-driven step; epoch schedulers throw (use step()).
  virtual void step(double metric);
  // torch's deprecated step(epoch), which SequentialLR still uses (step(0) at a milestone):
  // sets last_epoch = epoch and the lr from the scheduler's closed form where it has one
  // (torch's _get_closed_form_lr), else from get_lr().
  virtual void step_to(int64_t epoch);

  // lr of each group after the last step.
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  optim::Optimizer& optimizer() { return opt_; }

  virtual SchedulerState state_dict() const;
  // Restores every value present in `s` (hyper-parameters too, like torch). Throws when `s`
  // is for another scheduler type or another number of groups, or holds a value the
  // constructor would refuse; the scheduler is then left as it was.
  virtual void load_state_dict(const SchedulerState& s);

 protected:
  // epoch_based: set initial_lr / base_lrs (all torch _LRScheduler subclasses).
  // last_epoch != -1 resumes: every group must already hold initial_lr.
  LRScheduler(optim::Optimizer& opt, int64_t last_epoch, bool epoch_based);
  // New lr of every group for the current last_epoch (chainable form).
  virtual std::vector<double> get_lr() = 0;
  // lr of every group at last_epoch from base_lrs alone, for schedulers torch gives one.
  virtual std::optional<std::vector<double>> closed_form_lr() const { return std::nullopt; }
  // Derived constructors call this last (a base constructor can't call get_lr()).
  void initial_step();
  std::vector<double> group_lrs() const;
  void set_group_lrs(const std::vector<double>& lrs);
  // Hooks for subclass-specific state.
  virtual void save_extra(SchedulerState&) const {}
  virtual void load_extra(const SchedulerState&) {}

  void load_fields(const SchedulerState& s);  // load_state_dict without the rollback

  // SequentialLR rewinds its children and restarts the first one, as torch does.
  friend class SequentialLR;

  optim::Optimizer& opt_;
  int64_t last_epoch_ = -1;
  int64_t step_count_ = 0;
  std::vector<double> base_lrs_;
  std::vector<double> last_lr_;
};

// lr *= gamma every step_size epochs.
class StepLR : public LRScheduler {
 public:
  StepLR(optim::Optimizer& opt, int64_t step_size, double gamma = 0.1, int64_t last_epoch = -1);
  std::string type() const override { return "StepLR"; }
  int64_t step_size;
  double gamma;

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;
  void check_args() const;  // the constructor's rules, also applied to a loaded state
};

// lr *= gamma^k at each milestone epoch (k = how often the epoch is listed).
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(optim::Optimizer& opt, std::vector<int64_t> milestones, double gamma = 0.1,
              int64_t last_epoch = -1);
  std::string type() const override { return "MultiStepLR"; }
  std::vector<int64_t> milestones;  // sorted, with repeats
  double gamma;

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;
};

// lr *= gamma every epoch.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(optim::Optimizer& opt, double gamma, int64_t last_epoch = -1);
  std::string type() const override { return "ExponentialLR"; }
  double gamma;

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;
};

// Cosine annealing from base_lr to eta_min over T_max epochs (SGDR without restarts); past
// T_max the lr rises again (period 2 * T_max), exactly like torch's recursive formula.
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(optim::Optimizer& opt, int64_t T_max, double eta_min = 0.0, int64_t last_epoch = -1);
  std::string type() const override { return "CosineAnnealingLR"; }
  int64_t T_max;
  double eta_min;

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;
  void check_args() const;  // the constructor's rules, also applied to a loaded state
};

// Linear warm-up: factor goes from start_factor to end_factor over total_iters epochs.
class LinearLR : public LRScheduler {
 public:
  LinearLR(optim::Optimizer& opt, double start_factor = 1.0 / 3, double end_factor = 1.0,
           int64_t total_iters = 5, int64_t last_epoch = -1);
  std::string type() const override { return "LinearLR"; }
  double start_factor, end_factor;
  int64_t total_iters;

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;
  void check_args() const;  // the constructor's rules, also applied to a loaded state
};

// lr * factor until epoch total_iters, then lr (the factor is divided out again).
class ConstantLR : public LRScheduler {
 public:
  ConstantLR(optim::Optimizer& opt, double factor = 1.0 / 3, int64_t total_iters = 5, int64_t last_epoch = -1);
  std::string type() const override { return "ConstantLR"; }
  double factor;
  int64_t total_iters;

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;
  void check_args() const;  // the constructor's rules, also applied to a loaded state
};

// Polynomial decay to 0: lr = base_lr * (1 - min(epoch, total_iters) / total_iters) ** power.
class PolynomialLR : public LRScheduler {
 public:
  PolynomialLR(optim::Optimizer& opt, int64_t total_iters = 5, double power = 1.0, int64_t last_epoch = -1);
  std::string type() const override { return "PolynomialLR"; }
  int64_t total_iters;
  double power;

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;
  void check_args() const;  // the constructor's rules, also applied to a loaded state
};

}  // namespace dl::sched
