// The gradient reducer of data-parallel training (torch.nn.parallel.DistributedDataParallel's
// Reducer): averages every parameter's gradient over the ranks of a process group, starting the
// all-reduce of a bucket of gradients while backward is still computing the others.
//
//   Reducer r(model.parameters(), pg, {.bucket_cap_mb = 25});
//   r.prepare_for_backward(/*sync=*/true);   // false inside an accumulation window (no_sync)
//   loss.backward();                          // full buckets are all-reduced as backward goes
//   r.finalize();                             // wait, average, write back into .grad()
//   optimizer.step();
//
// Buckets (PyTorch's design): parameters are taken in REVERSE registration order, the order
// their gradients become ready in backward, and packed into buckets of at most bucket_cap_mb
// (a bucket closes once it reaches the cap; the first one closes at first_bucket_mb, so the
// first all-reduce starts early). Parameters of different dtypes or devices go to different
// buckets. Each bucket is one flat contiguous buffer:
//   flat [numel of its gradients + one "used" flag per parameter]   (the parameters' dtype)
// A post-accumulate-grad hook (engine/autograd) counts the parameters of a bucket whose
// gradient is complete; when a bucket is complete, it and every complete bucket after it are
// launched in bucket order (allreduce_async), so every rank issues the same collectives in the
// same order whatever order its hooks fire in. The hooks also test() the buckets in flight to
// drive MPI's progress while backward computes.
//
// finalize() launches the buckets not launched during the last backward (parameters that got
// no gradient in it, an accumulation window that flush() ended early, or no prepare call), so
// every bucket is all-reduced exactly once per optimizer update, waits for all of them, and
// writes the average (sum / world size, like DDP) back into each parameter's .grad().
//
// Parameters without a gradient: a rank that has no .grad() for a parameter contributes zeros
// and a "used" flag of 0; the flags are summed with the gradients (no extra communication).
// A parameter that some rank used gets the average on every rank (.grad() is created where it
// was undefined); one that no rank used keeps an undefined .grad() everywhere, as in a
// single-process run of the whole batch (optimizers skip it). Unlike PyTorch, no
// find_unused_parameters switch is needed; the cost of an unused parameter is that its
// bucket, and the buckets after it, wait for finalize() instead of overlapping backward.
// Where something else communicates during backward (SyncBatchNorm all-reduces in its
// backward), every rank must use the same parameters: a bucket that launches in backward on one
// rank and in finalize() on another would put the collectives in different orders.
//
// A world of one: no hooks, finalize() does nothing (the gradients already are the average).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/autograd/autograd.h"
#include "engine/dist/process_group.h"

namespace dl::dist {

struct ReducerOptions {
  double bucket_cap_mb = 25;    // MiB per bucket (DDP's bucket_cap_mb); > 0
  double first_bucket_mb = 1;   // MiB of the first bucket (DDP's _DEFAULT_FIRST_BUCKET_BYTES); > 0
};

class Reducer {
 public:
  // `params`: the parameters to average (those not requiring grad are left out), all
  // registration-ordered as Module::parameters() lists them. Throws std::invalid_argument for
  // bad options, a null group or a parameter listed twice.
  Reducer(std::vector<Tensor> params, ProcessGroupPtr pg, ReducerOptions options = {});
  ~Reducer();
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  // Before each backward: sync = true when the optimizer steps after it (buckets launch during
  // that backward), false inside an accumulation window (the hooks do nothing). Throws
  // std::logic_error when buckets were launched and finalize() has not run since.
  void prepare_for_backward(bool sync);
  // After the last backward of an optimizer step: see the header comment. Throws DistError
  // when a collective times out.
  void finalize();

  // Introspection (tests, logs). Bucket b holds params()[i] for i in bucket_params()[b], in
  // packing order; bucket 0 is launched first.
  const std::vector<Tensor>& params() const { return params_; }
  std::vector<std::vector<size_t>> bucket_params() const;
  size_t num_buckets() const { return buckets_.size(); }
  size_t buckets_launched() const { return next_bucket_; }  // since the last finalize()

 private:
  struct Bucket {
    std::vector<size_t> params;    // indices into params_, packing order
    std::vector<int64_t> offsets;  // each gradient's first element in flat
    int64_t numel = 0;             // gradient elements; the used flags follow
    Tensor flat;                   // [numel + params.size()], allocated at the first launch
    WorkPtr work;
    size_t ready = 0;              // parameters whose hook fired in this backward
  };
  void assign_buckets(const ReducerOptions& options);
  void on_grad_ready(size_t param);
  void launch(Bucket& b);
  void unpack(Bucket& b);

  std::vector<Tensor> params_;
  ProcessGroupPtr pg_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;     // param -> bucket
  std::vector<char> marked_;          // param's hook fired in this backward
  std::vector<GradHookHandle> hooks_;
  size_t next_bucket_ = 0;            // buckets [0, next_bucket_) are launched
  bool sync_ = false;                 // hooks launch buckets in this backward
};

}  // namespace dl::dist
