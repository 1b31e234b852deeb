#include "engine/nn/norm.h"

#include <stdexcept>

#include "engine/dist/process_group.h"
#include "engine/nn/init.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/nn.h"
#include "engine/ops/sync_batch_norm.h"

namespace dl::nn {

BatchNormBase::BatchNormBase(int64_t c, double eps_, std::optional<double> momentum_,
                             bool affine_, bool track)
    : num_features(c), eps(eps_), momentum(momentum_), affine(affine_), track_running_stats(track) {
  if (c < 0) throw std::invalid_argument("BatchNorm: num_features must be non-negative");
  if (affine) {
    weight = register_parameter("weight", empty({c}));
    bias = register_parameter("bias", empty({c}));
  }
  if (track) {
    running_mean = register_buffer("running_mean", empty({c}));
    running_var = register_buffer("running_var", empty({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, DType::I64));
  }
  reset_parameters();
}

void BatchNormBase::reset_running_stats() {
  if (!track_running_stats) return;
  init::zeros_(running_mean);
  init::ones_(running_var);
  init::zeros_(num_batches_tracked);
}

void BatchNormBase::reset_parameters() {
  reset_running_stats();
  if (affine) {
    init::ones_(weight);
    init::zeros_(bias);
  }
}

Tensor BatchNormBase::forward(const Tensor& x) { return run(x, false); }

Tensor BatchNormBase::forward_relu(const Tensor& x) { return run(x, true); }

Tensor BatchNormBase::run(const Tensor& x, bool relu) {
  check_input_dim(x);
  // torch.nn.modules.batchnorm._BatchNorm.forward
  double factor = momentum.value_or(0.0);
  if (training_ && track_running_stats) {
    NoGradGuard ng;
    add_(num_batches_tracked, scalar_tensor(1.0, TensorOptions(DType::I64, num_batches_tracked.device())));
    if (!momentum) factor = 1.0 / num_batches_tracked.item();  // cumulative average
  }
  bool use_batch_stats = training_ || (!running_mean.defined() && !running_var.defined());
  bool pass_running = !training_ || track_running_stats;
  if (training_ && process_group && process_group->world_size() > 1)
    return sync_batch_norm(x, weight, bias, pass_running ? running_mean : Tensor(),
                           pass_running ? running_var : Tensor(), factor, eps, process_group, relu);
  return (relu ? batch_norm_relu : batch_norm)(x, weight, bias, pass_running ? running_mean : Tensor(),
                                               pass_running ? running_var : Tensor(), use_batch_stats, factor, eps);
}

std::string BatchNormBase::extra_repr() const {
  return std::to_string(num_features) + ", eps=" + py_float(eps) +
         ", momentum=" + (momentum ? py_float(*momentum) : std::string("None")) +
         ", affine=" + py_bool(affine) + ", track_running_stats=" + py_bool(track_running_stats);
}

void BatchNorm1d::check_input_dim(const Tensor& x) const {
  if (x.dim() != 2 && x.dim() != 3)
    throw std::invalid_argument("BatchNorm1d: expected 2D or 3D input (got " +
                                std::to_string(x.dim()) + "D input)");
}

void BatchNorm2d::check_input_dim(const Tensor& x) const {
  if (x.dim() != 4)
    throw std::invalid_argument("BatchNorm2d: expected 4D input (got " + std::to_string(x.dim()) +
                                "D input)");
}

int convert_sync_batchnorm(Module& root, std::shared_ptr<dist::ProcessGroup> group) {
  int n = 0;
  for (auto& [name, m] : root.named_modules())
    if (auto* bn = dynamic_cast<BatchNormBase*>(m.get())) {
      bn->process_group = group;
      ++n;
    }
  return n;
}

}  // namespace dl::nn
