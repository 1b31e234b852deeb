// Shared pieces of the torch.optim ports (adadelta, adagrad, adamax, asgd, rmsprop, rprop,
// nadam, radam, sparse_adam): torch's constructor checks with torch's messages, the loop over
// parameters that have a gradient, state slots created on first use, the 0-dim float32
// scalars torch keeps in some states, and the hyper-parameter schemas several share.
#pragma once
#include <functional>
#include <map>
#include <string>

#include "engine/graph/attr_schema.h"
#include "engine/optim/optimizer.h"

namespace dl::optim::port {

// torch's `if not ok: raise ValueError("<what>: {}".format(value))`: throws
// std::invalid_argument("<type>: <what>: <value>") unless `ok`. Write `ok` the way torch does
// (`0 <= lr`), so that NaN fails it.
void require(bool ok, const std::string& type, const std::string& what, double value);
// torch's checks of betas: "Invalid beta parameter at index 0: 1" unless 0 <= beta < 1.
void require_betas(const std::string& type, const Options& o);
// The checks Adamax, NAdam and RAdam share, in torch's order: lr, eps, betas, weight_decay.
void require_adam_like(const std::string& type, const Options& o);

// The registered defaults of optimizer `type` overridden by `given`: what a constructor taking
// a partial options map starts from. Unknown keys are kept, for validate() to refuse by name.
Options complete_options(const std::string& type, const Options& given);

// Calls f(group, param, grad, state) for every parameter with a gradient, group by group in
// order, under no-grad (torch's step() loop). The state is created empty on first use.
using ParamUpdate = std::function<void(const ParamGroup&, Tensor& p, const Tensor& grad, ParamState& st)>;
void for_each_with_grad(std::vector<ParamGroup>& groups, std::map<std::string, ParamState>& state,
                        const ParamUpdate& f);

// The slot `name` of `st`; when absent it is created as zeros shaped like `p`
// (torch.zeros_like(p)) or filled with `value` (torch.full_like(p, value)).
Tensor& zeros_slot(ParamState& st, const std::string& name, const Tensor& p);
Tensor& full_slot(ParamState& st, const std::string& name, const Tensor& p, double value);

// 0-dim float32 state scalars (ASGD's eta and mu, NAdam's mu_product): torch creates them with
// torch.tensor(x), i.e. float32 on the cpu whatever the parameter's dtype, and its arithmetic on
// them rounds to float32 — so do we, or float64 runs would drift from torch's at 1e-8. The
// optimizers' slot_dtype keeps restored ones float32 too (torch would cast them to the
// parameter's dtype on load; the values are the same, being float32 numbers).
Tensor& scalar_slot(ParamState& st, const std::string& name, float value);
float scalar_value(const Tensor& t);
void set_scalar(Tensor& t, float value);
// Optimizer::check_slot for such a slot: "" when `value` is a 0-dim floating-point tensor.
std::string check_scalar_slot(const Tensor& value);

// Hyper-parameter schemas with torch's names, ranges and docs.
AttrSchema lr_attr(double def);                        // lr >= 0
AttrSchema eps_attr(double def);                       // eps >= 0, "added to the denominator"
AttrSchema weight_decay_attr();                        // weight_decay >= 0 (L2 penalty), default 0
AttrSchema betas_attr(double beta1 = 0.9, double beta2 = 0.999);  // stored as beta1, beta2 in [0, 1)

}  // namespace dl::optim::port
