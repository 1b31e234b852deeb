// Exponential moving average of a model's weights, for evaluating (and checkpointing) the
// averaged model while training the raw one:
//
//   optim::ExponentialMovingAverage ema(*model, 0.999);
//   for (...) { ...; opt.step(); ema.update(*model); }
//   ema.apply_to(*model);  evaluate(*model);  ema.restore(*model);
//
// Semantics (torch 1.13's torch.optim.swa_utils.AveragedModel with
// avg_fn = lambda avg, p, n: decay * avg + (1 - decay) * p):
// - parameters: the first update() copies the model's values (AveragedModel's n_averaged == 0),
//   each later one sets avg = decay * avg + (1 - decay) * p;
// - buffers (BatchNorm's running_mean/var, num_batches_tracked): COPIED from the model at every
//   update, not averaged. AveragedModel's default (use_buffers=False) leaves the averaged
//   model's buffers at their values from construction and expects torch.optim.swa_utils.
//   update_bn to recompute them; use_buffers=True averages them (and rounds an averaged
//   num_batches_tracked). Copying gives the averaged weights the current running statistics,
//   which track them closely for decays near 1, without an extra pass over the data.
// The tensors tracked are the model's state_dict entries (parameters and persistent buffers;
// a parameter shared under two names is tracked once, under its first name).
//
// apply_to()/restore() exchange the model's and the average's storages (no copy, no
// allocation): the model's tensors keep their identity, so optimizers and modules holding
// them are unaffected. Between the two the model holds the averaged values; do not train it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/nn/module.h"

namespace dl::optim {

class ExponentialMovingAverage {
 public:
  // Snapshots the model's current values (copies on the model's devices). decay in [0, 1].
  ExponentialMovingAverage(const nn::Module& model, double decay);

  double decay() const { return decay_; }
  int64_t num_updates() const { return num_updates_; }
  bool applied() const { return applied_; }

  // After each optimizer step. Throws while the average is applied, or when the model's
  // tensors (names, shapes, dtypes, devices) are not the ones it was built from.
  void update(const nn::Module& model);

  // Swaps the averaged values into the model (apply_to) and the training values back
  // (restore). apply_to twice or restore without apply_to throws.
  void apply_to(nn::Module& model);
  void restore(nn::Module& model);

  // The averaged tensors by state_dict key (aliasing the live ones, like Module::state_dict;
  // while applied, the model's tensors, which hold them) — with num_updates() what a
  // checkpoint stores.
  nn::StateDict state_dict() const;
  // Restores a state_dict() and its num_updates. Every tracked key must be present with the
  // same shape (values are converted to the tracked dtype and device); unknown keys throw.
  void load_state_dict(const nn::StateDict& sd, int64_t num_updates);

 private:
  struct Entry {
    std::string name;
    Tensor shadow;  // the average (the training values while applied)
    bool averaged;  // parameter (averaged) or buffer (copied)
  };
  // The model's tensor for each entry, in entry order; throws naming `what` on a mismatch.
  std::vector<Tensor> match(const nn::Module& model, const char* what) const;
  void swap_storage(nn::Module& model, const char* what);

  double decay_;
  int64_t num_updates_ = 0;
  bool applied_ = false;
  std::vector<Entry> entries_;
  std::vector<Tensor> applied_to_;  // the model's tensors while applied
};

}  // namespace dl::optim
