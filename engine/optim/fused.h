// Builds the lists the fused multi-tensor optimizer kernels take (kernels/optim.h): an
// optimizer's step() queues each parameter's row with its arguments, and consecutive rows
// with equal arguments, dtype and device go to the kernel in one call (on CUDA one launch per
// param group, instead of one per parameter or ~6 per parameter for the engine ops).
//
//   FusedQueue<decltype(rmsprop_step_stub), RmspropArgs> q(rmsprop_step_stub, fused_);
//   for each parameter with a gradient:
//     if (!q.add(args, {p, grad, square_avg, buf, grad_avg})) { ... the engine-op path ... }
//   q.flush();
//
// add() refuses a row the kernel cannot take (fused off, no kernel for the device, a
// non-contiguous tensor, a gradient of another dtype or device): the caller runs the engine
// ops for that parameter. Each parameter's update reads only its own tensors, so updating
// the queued ones later gives the same results.
#pragma once
#include "kernels/optim.h"

namespace dl::optim {

template <class Stub, class Args>
class FusedQueue {
 public:
  FusedQueue(Stub stub, bool enabled) : stub_(stub), enabled_(enabled) {}
  FusedQueue(const FusedQueue&) = delete;
  FusedQueue& operator=(const FusedQueue&) = delete;

  bool add(const Args& a, const OptimRow& row) {
    const Tensor& p = row[0];
    if (!enabled_ || !stub_.supports(p.device().type) ||
        (p.dtype() != DType::F32 && p.dtype() != DType::F64))
      return false;
    for (const Tensor& t : row)
      if (t.defined() && (!t.is_contiguous() || t.dtype() != p.dtype() || t.device() != p.device() ||
                          t.numel() != p.numel()))
        return false;
    if (!rows_.empty() && (a.tie() != args_.tie() || p.dtype() != rows_[0][0].dtype() ||
                           p.device() != rows_[0][0].device()))
      flush();
    if (rows_.empty()) args_ = a;
    rows_.push_back(row);
    return true;
  }

  // Runs the queued rows (one kernel call) and bumps their parameters' versions.
  void flush() {
    if (rows_.empty()) return;
    stub_(rows_[0][0].device())(rows_, args_);
    for (const OptimRow& r : rows_) r[0].bump_version();
    rows_.clear();
  }

 private:
  Stub stub_;
  bool enabled_ = true;
  Args args_{};
  OptimList rows_;
};

}  // namespace dl::optim
