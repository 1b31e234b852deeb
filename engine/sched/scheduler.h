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
#pragma once
#include <cstdint>
#include <map>
#include <string>
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

  // lr of each group after the last step.
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  optim::Optimizer& optimizer() { return opt_; }

  virtual SchedulerState state_dict() const;
  // Restores every value present in `s` (hyper-parameters too, like torch). Throws when `s`
  // is for another scheduler type or another number of groups.
  virtual void load_state_dict(const SchedulerState& s);

 protected:
  // epoch_based: set initial_lr / base_lrs (all torch _LRScheduler subclasses).
  // last_epoch != -1 resumes: every group must already hold initial_lr.
  LRScheduler(optim::Optimizer& opt, int64_t last_epoch, bool epoch_based);
  // New lr of every group for the current last_epoch (chainable form).
  virtual std::vector<double> get_lr() = 0;
  // Derived constructors call this last (a base constructor can't call get_lr()).
  void initial_step();
  std::vector<double> group_lrs() const;
  void set_group_lrs(const std::vector<double>& lrs);
  // Hooks for subclass-specific state.
  virtual void save_extra(SchedulerState&) const {}
  virtual void load_extra(const SchedulerState&) {}

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
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;
  void check_args() const;  // the constructor's rules, also applied to a loaded state
};

}  // namespace dl::sched
