// Automatic mixed precision: autocast, as torch.autocast does it on CUDA.
//
//   {
//     amp::AutocastGuard ac(DType::BF16);  // this thread, until the guard goes
//     Tensor y = model.forward(x);          // linear/conv in bf16, softmax/losses in f32
//     loss = loss_fn(y, target);
//   }
//   loss.backward();                        // outside: backward runs in the saved dtypes
//
// Each op entry point calls autocast() once with its policy; when autocast is off (the default)
// the inputs come back unchanged. The casts are differentiable (Tensor::to), so an f32 master
// weight cast to bf16 for a linear gets its gradient back in f32.
//
// Policies, engine-wide (PyTorch's CUDA lists, autocast_mode.cpp, reduced to our ops):
//
//   | policy  | ops                                                          | inputs become         |
//   |---------|--------------------------------------------------------------|-----------------------|
//   | Lower   | mm, matmul, linear, conv2d, conv_transpose2d                 | f32, f16/bf16 -> low  |
//   | F32     | softmax, log_softmax, every loss (cross_entropy, nll_loss,   | f16/bf16 -> f32       |
//   |         | mse/l1/smooth_l1/huber, bce, bce_with_logits), layer_norm,   |                       |
//   |         | batch_norm, sum, mean, var/std, exp, log, pow, the rnn ops   |                       |
//   | Promote | everything else (add, mul, relu, pooling, dropout, ...)      | the widest input type |
//
// Promote is what the binary ops already do (elementwise.cpp promote_pair), so those ops make no
// call. Only floating tensors other than f64 are cast: f64, integer and bool
// tensors, and undefined ones, pass through. The rnn ops are F32 (PyTorch lowers the cells'
// GEMMs; ours run inside one fused op, so they stay f32 for now).
//
// Low-precision compute: a CPU kernel given f16/bf16 tensors computes in f32 on exact copies and
// rounds its outputs (kernels/f32_compute.h); that equals low-precision inputs with f32
// accumulation, which is what cuBLAS (CUBLAS_COMPUTE_32F) and cuDNN do.
#pragma once
#include <array>
#include <optional>
#include <string>

#include "engine/tensor/tensor.h"

namespace dl::amp {

enum class CastPolicy { Lower, F32 };

// Training precision (train.precision). tf32 is f32 storage with TF32 tensor-core GEMMs/convs
// on CUDA; on the CPU it is plain f32.
enum class Precision { FP32, TF32, BF16, FP16 };
Precision parse_precision(const std::string& s);  // throws std::invalid_argument
const char* precision_name(Precision p);
// The autocast dtype of a precision: BF16/F16, or none for fp32/tf32.
std::optional<DType> autocast_dtype(Precision p);

// TF32 tensor-core math for f32 GEMMs and convolutions on CUDA (process-wide; off by default,
// as torch.backends.cuda.matmul.allow_tf32 is). No effect on the CPU, which has no TF32.
void set_allow_tf32(bool allow);

// This thread's autocast state.
bool autocast_enabled();
DType autocast_dtype();

// Enables autocast with `low` (F16 or BF16) on this thread; restores the previous state on
// destruction. AutocastGuard(std::nullopt) disables it (e.g. for evaluation in f32).
class AutocastGuard {
 public:
  explicit AutocastGuard(std::optional<DType> low);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool prev_enabled_;
  DType prev_dtype_;
};

// `x` as an op of `policy` sees it under the current state.
Tensor autocast(CastPolicy policy, const Tensor& x);

// The inputs of one op as it sees them: auto [x, w, b] = amp::autocast(CastPolicy::Lower, x_in, w_in, b_in);
template <class... Ts>
std::array<Tensor, sizeof...(Ts)> autocast(CastPolicy policy, const Ts&... xs) {
  return {autocast(policy, static_cast<const Tensor&>(xs))...};
}

}  // namespace dl::amp
