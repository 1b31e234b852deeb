// LambdaLR and MultiplicativeLR with the lambda written as a safe expression of the epoch
// (engine/sched/expr.h), e.g. "0.95 ** epoch" or "min(1, (epoch + 1) / 5)".
//
// torch takes one Python function per param group; dltool takes ONE expression for all groups
// (each group still scales its own base lr). The expression is saved in the scheduler state
// and restored from it like the other hyper-parameters.
#pragma once
#include <string>
#include <vector>

#include "engine/sched/expr.h"
#include "engine/sched/scheduler.h"

namespace dl::sched {

// What both share: the expression, saved as the state string "lr_lambda".
class ExprScheduler : public LRScheduler {
 public:
  Expr lr_lambda;

 protected:
  ExprScheduler(optim::Optimizer& opt, Expr f, int64_t last_epoch)
      : LRScheduler(opt, last_epoch, /*epoch_based=*/true), lr_lambda(std::move(f)) {}
  void save_extra(SchedulerState& s) const override;
  void load_extra(const SchedulerState& s) override;
};

// lr = base_lr * lr_lambda(epoch).
class LambdaLR : public ExprScheduler {
 public:
  LambdaLR(optim::Optimizer& opt, Expr lr_lambda, int64_t last_epoch = -1);
  std::string type() const override { return "LambdaLR"; }

 protected:
  std::vector<double> get_lr() override;
};

// lr *= lr_lambda(epoch) at every step after the first (epoch >= 1).
class MultiplicativeLR : public ExprScheduler {
 public:
  MultiplicativeLR(optim::Optimizer& opt, Expr lr_lambda, int64_t last_epoch = -1);
  std::string type() const override { return "MultiplicativeLR"; }

 protected:
  std::vector<double> get_lr() override;
};

}  // namespace dl::sched
