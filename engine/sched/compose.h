// Schedulers made of schedulers (torch 1.13): SequentialLR (one after the other, switching at
// milestones; e.g. warm-up then cosine) and ChainedScheduler (all of them at every step, each
// multiplying onto the lr the previous one set).
//
// The children are built first, in order, on the same optimizer, and each one changes the lr
// when it is built (its initial step), exactly as in Python; SequentialLR then resets the lr
// to initial_lr, rewinds every child by one epoch and restarts the first, and at each
// milestone steps the next child with step_to(0) (torch's step(0): the closed form where the
// child has one). A child's state is saved under its index: "0.last_epoch", "1.base_lrs",
// strings "0.type", ... (nested composites nest the prefixes). Children are built with the
// parent's SchedulerContext: a child's `auto` (T_max, total_steps) is the whole run's steps.
// Refused as torch 1.13 can't run them either: a ReduceLROnPlateau child (needs a metric), a
// ChainedScheduler inside a SequentialLR, a SequentialLR after the first child of another.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/sched/scheduler.h"

namespace dl::sched {

// What both share: the children, their state under "<index>.", no step_to.
class ComposedScheduler : public LRScheduler {
 public:
  using LRScheduler::step;
  void step_to(int64_t epoch) override;  // throws: torch's composites' step() takes no epoch
  const std::vector<std::unique_ptr<LRScheduler>>& schedulers() const { return schedulers_; }

 protected:
  // Derived constructors check the children (messages name their type()).
  ComposedScheduler(optim::Optimizer& opt, std::vector<std::unique_ptr<LRScheduler>>&& schedulers, bool epoch_based);
  std::vector<double> get_lr() override { return group_lrs(); }
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;

  std::vector<std::unique_ptr<LRScheduler>> schedulers_;
};

class SequentialLR : public ComposedScheduler {
 public:
  // milestones: one fewer than schedulers, where the next scheduler takes over.
  SequentialLR(optim::Optimizer& opt, std::vector<std::unique_ptr<LRScheduler>> schedulers,
               std::vector<int64_t> milestones);
  std::string type() const override { return "SequentialLR"; }
  void step() override;
  const std::vector<int64_t>& milestones() const { return milestones_; }

 protected:
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;

 private:
  std::vector<int64_t> milestones_;
};

class ChainedScheduler : public ComposedScheduler {
 public:
  explicit ChainedScheduler(std::vector<std::unique_ptr<LRScheduler>> schedulers);
  std::string type() const override { return "ChainedScheduler"; }
  void step() override;
};

}  // namespace dl::sched
