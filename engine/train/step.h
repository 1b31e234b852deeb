// The training step: what one batch does to a model, owned by the engine so every front end
// (the CLI's loop, benchmarks, tests, data-parallel training later) runs the same arithmetic.
//
//   train::TrainStep step(model, *optimizer, {.accumulate_steps = 2, .clip_grad_norm = 1.0});
//   for (batch : loader) {
//     train::StepResult r = step.run([&] { return loss_fn(model.forward(batch.x), batch.y); });
//     if (r.updated) scheduler->step();
//   }
//   step.flush();  // the epoch ended inside an accumulation window: update with what is there
//
// run(): forward + loss (the closure), the before_backward hooks (told whether this micro-batch
// completes the accumulation window: data-parallel training synchronises gradients only
// then, like DDP's no_sync), backward of loss / accumulate_steps, and once
// accumulate_steps micro-batches have contributed (or flush()): the before_update hooks (where
// gradients are complete: data-parallel all-reduce, gradient statistics), clipping
// (clip_grad_value_, then clip_grad_norm_), optimizer.step(), zero_grad, the after_update hooks
// (EMA). Optimizers that need a closure (LBFGS) get one that re-runs forward + backward on the
// same batch (each evaluation runs the before_backward hooks with true and the before_update
// hooks); they cannot accumulate. Semantics are PyTorch's usual loop:
//   loss = loss_fn(model(x), y) / accumulate; loss.backward()
//   if (i + 1) % accumulate == 0 or last batch: clip; opt.step(); opt.zero_grad()
// Mixed precision (engine/amp): with options.autocast set, the closure (forward + loss) runs
// under amp::AutocastGuard (backward does not). With a GradScaler (fp16), backward runs on
// loss * scale, and update() unscales the gradients after the before_update hooks
// (data-parallel all-reduce sums scaled gradients, as DDP does) and before clipping, steps the
// optimizer only when every gradient is finite (else the step is skipped: StepResult::skipped,
// last_update_skipped()) and then updates the scale: torch.cuda.amp's recipe.
// With mean-reduced losses and equal micro-batches, accumulate_steps = k equals one batch k
// times larger (exactly, up to rounding, for models without batch statistics).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "engine/amp/grad_scaler.h"
#include "engine/optim/optimizer.h"

namespace dl::train {

struct StepOptions {
  int64_t accumulate_steps = 1;  // micro-batches per optimizer step (>= 1)
  double clip_grad_norm = 0;     // max total gradient norm; 0 = no clipping
  double clip_norm_type = 2;     // p of the norm (inf allowed)
  double clip_grad_value = 0;    // clamp every gradient element to [-v, v]; 0 = no clamping
  std::optional<DType> autocast = std::nullopt;  // F16/BF16: forward + loss under amp::AutocastGuard
  // Read nothing back to the host (engine/tensor/host_reads.h; what a GPU loop wants): the
  // loss and the gradient norm stay tensors (StepResult::loss_value, grad_norm_value), so
  // StepResult::loss and grad_norm are not filled, and a non-finite loss is not caught here:
  // its backward and update run, and the caller finds it when it reads the loss (the CLI's
  // loop does every log_every steps). fp16 loss scaling still reads its inf/NaN verdict every
  // update, as torch.cuda.amp.GradScaler does. Optimizers that need a closure read the loss.
  bool defer_host_reads = false;
};

struct StepResult {
  double loss = 0;                 // this micro-batch's loss (unscaled); not with defer_host_reads
  bool updated = false;            // the optimizer stepped after this micro-batch
  std::optional<double> grad_norm; // total norm before clipping, when clip_grad_norm is on (not deferred)
  bool skipped = false;            // updated, but inf/NaN gradients: the optimizer did not step
  Tensor loss_value;               // the loss, detached, on its device (0-dim)
  Tensor grad_norm_value;          // the total norm as a 0-dim float64 tensor, when clipping by norm
};

class TrainStep {
 public:
  using LossClosure = std::function<Tensor()>;  // forward + loss of the current batch
  using Hook = std::function<void()>;
  using BackwardHook = std::function<void(bool will_update)>;

  // Throws std::invalid_argument for bad options (accumulate_steps < 1, negative clips, an
  // optimizer that needs a closure with accumulate_steps > 1).
  TrainStep(optim::Optimizer& optimizer, StepOptions options = {});

  StepResult run(const LossClosure& loss);
  // Ends an accumulation window early (end of epoch): updates when gradients are pending.
  // Returns whether it updated.
  bool flush(std::optional<double>* grad_norm = nullptr);
  // The total gradient norm of the last update that clipped by norm (0-dim float64 on the
  // device; undefined before one): read it when logging, not every step.
  const Tensor& last_grad_norm() const { return last_norm_; }

  // Hooks, in registration order. before_backward(will_update): the loss is finite and its
  // backward is next; will_update says whether the optimizer steps after it (false inside an
  // accumulation window; a window that flush() ends early is updated without one being true).
  // before_update: gradients complete, not yet clipped.
  void add_before_backward(BackwardHook h) { before_backward_.push_back(std::move(h)); }
  void add_before_update(Hook h) { before_update_.push_back(std::move(h)); }
  void add_after_update(Hook h) { after_update_.push_back(std::move(h)); }

  // Loss scaling (fp16): the scaler is the caller's and must outlive the step. Throws
  // std::invalid_argument for an optimizer that needs a closure (as torch's GradScaler does).
  void set_grad_scaler(amp::GradScaler* scaler);
  amp::GradScaler* grad_scaler() const { return scaler_; }
  // Whether the last update (run() or flush()) skipped the optimizer step for inf/NaN gradients.
  bool last_update_skipped() const { return last_skipped_; }

  int64_t pending_micro_batches() const { return pending_; }
  const StepOptions& options() const { return options_; }
  optim::Optimizer& optimizer() { return opt_; }

 private:
  Tensor update();  // the total gradient norm when clipping by norm
  std::vector<Tensor> params_with_grad() const;

  optim::Optimizer& opt_;
  StepOptions options_;
  bool closure_;
  int64_t pending_ = 0;
  amp::GradScaler* scaler_ = nullptr;
  bool last_skipped_ = false;
  Tensor last_norm_;
  std::vector<Hook> before_update_, after_update_;
  std::vector<BackwardHook> before_backward_;
};

}  // namespace dl::train
