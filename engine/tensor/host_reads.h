// Reads of tensor values by the host, and the checks that can wait for one.
//
// On a GPU every read of a device value by the host (Tensor::item, Tensor::to_vector) waits for
// the device's stream: the host stops queueing work until the GPU has caught up. A training
// loop that reads the loss, a gradient norm or a "targets in range" flag every step therefore
// runs at the speed of the launches, not of the GPU. dltool's training loop reads those values
// every log_every steps instead (train/step.h StepOptions::defer_host_reads).
//
// host_read_count(): how many reads this thread made, on any device. The CPU runs the same
// code, so tests count reads on the CPU to check a loop reads no more than it must.
//
// Deferred checks: while a DeferChecksGuard is alive on this thread, an op that validates its
// input on the device (class targets in range: engine/ops/loss.cpp) does not read the verdict
// back. It records it instead: a one-element int64 device tensor, -1 when the input is valid
// (else the offending position), and the function that throws the op's error for it. The
// pending checks run at this thread's next host read, before its value is returned, in the
// order they were recorded; the first failing one throws. Like PyTorch's device-side asserts,
// the error comes later than the op, but it names the op, the position and the value.
#pragma once
#include <cstdint>
#include <functional>

#include "engine/tensor/tensor.h"

namespace dl {

uint64_t host_read_count();

class DeferChecksGuard {
 public:
  explicit DeferChecksGuard(bool enabled = true);
  ~DeferChecksGuard();
  DeferChecksGuard(const DeferChecksGuard&) = delete;
  DeferChecksGuard& operator=(const DeferChecksGuard&) = delete;

 private:
  bool previous_;
};

bool checks_deferred();

// `bad`: one int64 element (-1 = valid, else a position); `raise(position)` throws the error.
void defer_check(Tensor bad, std::function<void(int64_t)> raise);
// Runs the pending checks now (one host read for all of them); the first failing one throws.
// Tensor::item and Tensor::to_vector call it.
void run_deferred_checks();
size_t pending_checks();

namespace detail {
void note_host_read();  // Tensor::item / to_vector: counts the read, then runs the pending checks
}

}  // namespace dl
