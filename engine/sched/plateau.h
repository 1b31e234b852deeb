// ReduceLROnPlateau: lr *= factor when a metric stopped improving for `patience` steps.
#pragma once
#include <string>
#include <vector>

#include "engine/sched/scheduler.h"

namespace dl::sched {

struct PlateauOptions {
  std::string mode = "min";             // "min" | "max"
  double factor = 0.1;                  // new_lr = max(lr * factor, min_lr); must be < 1
  int64_t patience = 10;                // bad steps tolerated before a reduction
  double threshold = 1e-4;              // significant-improvement margin
  std::string threshold_mode = "rel";   // "rel": best * (1 -/+ threshold), "abs": best -/+ threshold
  int64_t cooldown = 0;                 // steps to wait after a reduction
  double min_lr = 0.0;                  // for every group, unless min_lrs is given
  std::vector<double> min_lrs = {};     // one per param group
  double eps = 1e-8;                    // reductions smaller than eps are skipped
};

// torch 1.13 semantics. Does not set initial_lr; last_epoch counts step(metric) calls.
class ReduceLROnPlateau : public LRScheduler {
 public:
  explicit ReduceLROnPlateau(optim::Optimizer& opt, PlateauOptions options = {});
  std::string type() const override { return "ReduceLROnPlateau"; }
  bool needs_metric() const override { return true; }
  using LRScheduler::step;
  void step() override;  // throws: a metric is required
  void step(double metric) override;

  bool in_cooldown() const { return cooldown_counter > 0; }
  bool is_better(double a, double best) const;

  PlateauOptions options;
  double best;
  int64_t num_bad_epochs = 0;
  int64_t cooldown_counter = 0;

 protected:
  std::vector<double> get_lr() override { return group_lrs(); }
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;

 private:
  void check_options() const;
  double mode_worse() const;
};

}  // namespace dl::sched
