// torch.optim.LBFGS (PyTorch 1.13), heavily inspired by minFunc: limited-memory BFGS over all
// parameters as one flat vector, with an optional strong-Wolfe line search.
//
//   optim::LBFGS opt(model->named_parameters(), {{"history_size", 10}, {"line_search_fn", 1}});
//   opt.step([&] { opt.zero_grad(); Tensor l = loss(model->forward(x), y); l.backward(); return l.item(); });
//
// step(closure) runs up to max_iter iterations, each calling the closure (same batch) once, or
// as often as the line search needs; plain step() throws. One parameter group only, all on one
// device (torch's rules). Options (param-group numbers): lr, max_iter, max_eval (0 = "auto" =
// max_iter * 5 / 4, resolved at each step), tolerance_grad, tolerance_change, history_size,
// line_search_fn (0 = none, 1 = strong_wolfe).
//
// State: torch keeps LBFGS's global state under the first parameter; so do we, as slots of
// the first parameter's ParamState (ParamState::step stays 0):
//   d, prev_flat_grad     [numel]     last direction and gradient (the parameters' dtype)
//   old_dirs, old_stps    [k, numel]  the k <= history_size stored y and s vectors, oldest first
//   ro                    [k]         1 / (y . s) per stored pair (float64)
//   t, H_diag, prev_loss, n_iter, func_evals   0-dim float64
// Scalars are float64 like torch's Python floats (and are restored as float64, see
// slot_dtype), so a resume continues bit-exactly. With float64 parameters every number is
// torch's; with float32 ones torch rounds some scalars (ys, H_diag, gtd) to float32 and we do
// not, so the iterates agree to float32 rounding rather than bit for bit.
#pragma once
#include <string>
#include <vector>

#include "engine/optim/optimizer.h"

namespace dl::optim {

class LBFGS final : public Optimizer {
 public:
  // `options` override the registered defaults (unknown keys throw).
  explicit LBFGS(const NamedTensors& params, const Options& options = {});
  // `defaults`: complete options (what the registry's builder passes).
  LBFGS(std::vector<ParamGroup> groups, const Options& defaults);

  // Throws std::invalid_argument: LBFGS re-evaluates the loss and needs step(closure).
  void step() override;
  // One optimization step (up to max_iter iterations); returns the closure's first loss.
  double step(const Closure& closure) override;

  std::vector<std::string> slot_names(const Options& group) const override;
  std::string check_slot(const std::string& slot, const Tensor& value, const Tensor& param) const override;
  DType slot_dtype(const std::string& slot, const Tensor& param) const override;

 private:
  int64_t numel_ = 0;  // all parameters together: the length of the flat vectors
};

}  // namespace dl::optim
