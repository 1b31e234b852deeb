// BatchNorm1d, BatchNorm2d.
#pragma once
#include <memory>
#include <optional>

#include "engine/nn/module.h"

namespace dl::dist { class ProcessGroup; }

namespace dl::nn {

// Batch normalisation over dim 1 (torch's _BatchNorm). State, in state_dict order:
//   weight [C] (=1), bias [C] (=0)                      when affine
//   running_mean [C] (=0), running_var [C] (=1),
//   num_batches_tracked (i64 0-dim, +1 per training forward)   when track_running_stats
// momentum = nullopt means a cumulative moving average (factor 1 / num_batches_tracked).
// In eval mode the running statistics are used; without track_running_stats batch
// statistics are used in both modes.
// With a process_group of more than one rank (convert_sync_batchnorm), training-mode
// statistics are over every rank's batch (torch.nn.SyncBatchNorm, ops sync_batch_norm); eval
// mode and a world of one are plain batch norm. Names, state_dict and export do not change.
class BatchNormBase : public Module {
 public:
  BatchNormBase(int64_t num_features, double eps, std::optional<double> momentum, bool affine,
                bool track_running_stats);
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  // relu(forward(x)) as one op (ops batch_norm_relu), for the graph's batch norm + ReLU fusion.
  Tensor forward_relu(const Tensor& x);
  std::string extra_repr() const override;
  void reset_running_stats();
  void reset_parameters();

  int64_t num_features;
  double eps;
  std::optional<double> momentum;
  bool affine, track_running_stats;
  Tensor weight, bias;                                     // [C] or undefined
  Tensor running_mean, running_var, num_batches_tracked;  // [C], [C], [] i64, or undefined
  std::shared_ptr<dist::ProcessGroup> process_group;      // null: not synchronised

 protected:
  virtual void check_input_dim(const Tensor& x) const = 0;

 private:
  Tensor run(const Tensor& x, bool relu);
};

// Input [N, C] or [N, C, L].
class BatchNorm1d : public BatchNormBase {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5,
                       std::optional<double> momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNormBase(num_features, eps, momentum, affine, track_running_stats) {}
  std::string type_name() const override { return "BatchNorm1d"; }

 protected:
  void check_input_dim(const Tensor& x) const override;
};

// Input [N, C, H, W].
class BatchNorm2d : public BatchNormBase {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5,
                       std::optional<double> momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNormBase(num_features, eps, momentum, affine, track_running_stats) {}
  std::string type_name() const override { return "BatchNorm2d"; }

 protected:
  void check_input_dim(const Tensor& x) const override;
};

// torch.nn.SyncBatchNorm.convert_sync_batchnorm: every BatchNorm1d/2d in `root` (itself
// included) synchronises its training-mode statistics over `group` (null: back to plain batch
// norm). Returns how many modules it switched. Every rank must run the same model: each such
// layer all-reduces in forward and backward.
int convert_sync_batchnorm(Module& root, std::shared_ptr<dist::ProcessGroup> group);

}  // namespace dl::nn
