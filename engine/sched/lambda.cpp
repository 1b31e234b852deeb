#include "engine/sched/lambda.h"

#include <memory>
#include <stdexcept>

#include "engine/sched/registry.h"

namespace dl::sched {

void ExprScheduler::save_extra(SchedulerState& s) const { s.strings["lr_lambda"] = lr_lambda.source(); }

void ExprScheduler::load_extra(const SchedulerState& s) {
  auto it = s.strings.find("lr_lambda");
  if (it == s.strings.end()) return;
  try {
    lr_lambda = Expr(it->second);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(s.type + " state: lr_lambda '" + it->second + "': " + e.what());
  }
}

LambdaLR::LambdaLR(optim::Optimizer& opt, Expr f, int64_t last_epoch) : ExprScheduler(opt, std::move(f), last_epoch) {
  initial_step();
}

std::vector<double> LambdaLR::get_lr() {
  const double factor = lr_lambda.eval(static_cast<double>(last_epoch_));
  std::vector<double> lrs;
  for (double base : base_lrs_) lrs.push_back(base * factor);
  return lrs;
}

MultiplicativeLR::MultiplicativeLR(optim::Optimizer& opt, Expr f, int64_t last_epoch)
    : ExprScheduler(opt, std::move(f), last_epoch) {
  initial_step();
}

std::vector<double> MultiplicativeLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (last_epoch_ <= 0) return lrs;
  const double factor = lr_lambda.eval(static_cast<double>(last_epoch_));
  for (double& lr : lrs) lr = lr * factor;
  return lrs;
}

// ---- registrations --------------------------------------------------------------------------
namespace {
using A = AttrSchema;
using Ptr = std::unique_ptr<LRScheduler>;
A lambda_attr(const std::string& doc) {
  return A::string("lr_lambda").req().check(expression_rule, "an expression of epoch, e.g. \"0.95 ** epoch\"")
      .describe(doc + "; one expression for all groups (" + expression_names() + "; + - * / // % **)");
}
const RegisterScheduler kLambda({
    "lambda", "LambdaLR", "torch.optim.lr_scheduler.LambdaLR: lr = initial lr * lr_lambda(epoch)",
    {lambda_attr("factor of the initial lr, e.g. \"0.95 ** epoch\"")}, nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext&) -> Ptr {
      return std::make_unique<LambdaLR>(o, Expr(attr_string(c.attrs, "lr_lambda")));
    },
    /*takes_children=*/false, /*metric_driven=*/false, /*example=*/{{"lr_lambda", std::string("0.95 ** epoch")}}});
const RegisterScheduler kMultiplicative({
    "multiplicative", "MultiplicativeLR",
    "torch.optim.lr_scheduler.MultiplicativeLR: lr *= lr_lambda(epoch) every step",
    {lambda_attr("factor applied to the lr at each step, e.g. \"0.95\"")}, nullptr,
    [](optim::Optimizer& o, const SchedulerConfig& c, const SchedulerContext&) -> Ptr {
      return std::make_unique<MultiplicativeLR>(o, Expr(attr_string(c.attrs, "lr_lambda")));
    },
    /*takes_children=*/false, /*metric_driven=*/false, /*example=*/{{"lr_lambda", std::string("0.95")}}});
}  // namespace

}  // namespace dl::sched
