// Cyclical schedules, stepped per batch in torch's examples: CyclicLR, OneCycleLR and
// CosineAnnealingWarmRestarts (torch 1.13 semantics, same arithmetic => same bits).
//
// CyclicLR and OneCycleLR overwrite the groups' lr (and initial_lr for OneCycleLR) when they
// are built, and with cycle_momentum they cycle a momentum option inversely to the lr: the
// group's "momentum" (SGD, RMSprop) or "beta1" for optimizers with betas (Adam family) —
// OneCycleLR does this like torch 1.13; torch 1.13's CyclicLR only knows "momentum" and
// cycling beta1 there is torch 2.x's behaviour (same formula). An optimizer with neither is
// refused when cycle_momentum is true, as in torch.
//
// Per-group values (base_lr, max_lr, base_momentum, max_momentum) take one value per param
// group or a single value for all of them (torch's _format_param).
#pragma once
#include <string>
#include <vector>

#include "engine/sched/scheduler.h"

namespace dl::sched {

// The momentum option a cyclic schedule moves inversely to the lr. State: scalar
// "cycle_momentum", string "momentum_key", lists "base_momentums", "max_momentums".
struct MomentumCycle {
  bool enabled = false;
  std::string key;                // "momentum" or "beta1" (when enabled)
  std::vector<double> base, max;  // per group: momentum at the lr peak / at the cycle start

  void set(optim::Optimizer& opt, const std::vector<double>& values) const;  // no-op unless enabled
  void save(SchedulerState& s) const;
  void load(const SchedulerState& s);
  void check(const optim::Optimizer& opt, const std::string& who) const;  // a loaded state
};

struct CyclicOptions {
  std::vector<double> base_lr;        // lower lr boundary (required)
  std::vector<double> max_lr;         // upper lr boundary (required)
  int64_t step_size_up = 2000;        // iterations in the increasing half of a cycle
  int64_t step_size_down = 0;         // ... decreasing half; 0 = step_size_up (torch's None)
  std::string mode = "triangular";    // triangular | triangular2 | exp_range
  double gamma = 1.0;                 // exp_range: amplitude * gamma ** iteration
  bool cycle_momentum = true;
  std::vector<double> base_momentum = {0.8};
  std::vector<double> max_momentum = {0.9};
};

// Cyclical learning rate (Smith 2017). scale_mode follows the mode as in torch: "cycle" for
// triangular and triangular2, "iterations" for exp_range.
class CyclicLR : public LRScheduler {
 public:
  CyclicLR(optim::Optimizer& opt, const CyclicOptions& options);
  std::string type() const override { return "CyclicLR"; }

  std::vector<double> max_lrs;
  double total_size = 0, step_ratio = 0;
  std::string mode, scale_mode;
  double gamma = 1.0;
  MomentumCycle momentum;

 protected:
  std::vector<double> get_lr() override;
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;

 private:
  double scale_fn(double x) const;
  void check_state() const;
};

struct OneCycleOptions {
  std::vector<double> max_lr;          // peak lr (required)
  int64_t total_steps = 0;             // steps in the cycle (required, > 0)
  double pct_start = 0.3;              // fraction of the cycle spent increasing the lr
  std::string anneal_strategy = "cos";  // cos | linear
  bool cycle_momentum = true;
  std::vector<double> base_momentum = {0.85};
  std::vector<double> max_momentum = {0.95};
  double div_factor = 25.0;            // initial_lr = max_lr / div_factor
  double final_div_factor = 1e4;       // min_lr = initial_lr / final_div_factor
  bool three_phase = false;            // fastai's two phases (default) or the paper's three
};

// The 1cycle policy (Smith & Topin 2017). Stepping more than total_steps times after the
// initial step throws like torch ("Tried to step 102 times. The specified number of total
// steps is 100").
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(optim::Optimizer& opt, const OneCycleOptions& options);
  std::string type() const override { return "OneCycleLR"; }

  int64_t total_steps = 0;
  double pct_start = 0.3;
  std::string anneal_strategy;
  bool three_phase = false;
  MomentumCycle momentum;
  // Per group (torch keeps them in the param groups; dltool's groups hold only the
  // optimizer's options and initial_lr, whose value is base_lrs()).
  std::vector<double> max_lrs, min_lrs;

 protected:
  std::vector<double> get_lr() override;
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;

 private:
  enum class Level { Initial, Max, Min, MaxMomentum, BaseMomentum };
  struct Phase {
    double end_step;
    Level start_lr, end_lr, start_momentum, end_momentum;
  };
  std::vector<Phase> phases() const;
  double level(Level l, size_t group) const;
  double anneal(double start, double end, double pct) const;
  void check_state() const;
};

// SGDR: cosine annealing from the initial lr to eta_min over T_i steps, restarting with
// T_i *= T_mult. Integer-epoch stepping (torch's fractional step(epoch + i / iters) is not
// offered).
class CosineAnnealingWarmRestarts : public LRScheduler {
 public:
  CosineAnnealingWarmRestarts(optim::Optimizer& opt, int64_t T_0, int64_t T_mult = 1, double eta_min = 0.0);
  std::string type() const override { return "CosineAnnealingWarmRestarts"; }
  using LRScheduler::step;
  void step() override;
  void step_to(int64_t epoch) override;

  int64_t T_0, T_i, T_mult;
  double eta_min;
  double T_cur;  // steps since the last restart (a fraction only after step_to with T_mult > 1)

 protected:
  std::vector<double> get_lr() override;
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;

 private:
  void apply(int64_t epoch);
  void check_args() const;
};

}  // namespace dl::sched
