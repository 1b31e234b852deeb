#include "engine/ops/sync_batch_norm.h"

#include <stdexcept>
#include <string>

#include "engine/autograd/autograd.h"
#include "engine/dist/process_group.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/nn_checks.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"

namespace dl {
using namespace nn_checks;

namespace {

// A per-channel [C] tensor as [1, C, 1, ...] for broadcasting against x.
Tensor per_channel(const Tensor& v, const Tensor& x) {
  Shape s(static_cast<size_t>(x.dim()), 1);
  s[1] = v.size(0);
  return v.reshape(s);
}

}  // namespace

Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, double momentum, double eps,
                       const std::shared_ptr<dist::ProcessGroup>& group, bool relu) {
  const char* op = "sync_batch_norm";
  const int64_t C = check_batch_norm_args(op, x, weight, bias, running_mean, running_var);
  if (!group) throw std::invalid_argument("sync_batch_norm: process group is null");
  Tensor xc = contig(x), wc = contig(weight), bc = contig(bias);
  const int64_t local_count = C > 0 ? x.numel() / C : 0;

  // stats [2C + 1] f64: per-channel sum, per-channel sum of squares, count.
  Tensor stats;
  {
    NoGradGuard ng;
    Tensor x3 = xc.to(DType::F64).reshape({x.size(0), C, -1});  // [N, C, S]
    stats = cat({sum(x3, {0, 2}), sum(mul(x3, x3), {0, 2}),
                 full({1}, static_cast<double>(local_count), TensorOptions(DType::F64, x.device()))});
  }
  group->allreduce(stats);
  const double count_d = stats.narrow(0, 2 * C, 1).item();
  const int64_t count = static_cast<int64_t>(count_d + 0.5);
  if (count <= 1)
    throw std::invalid_argument("sync_batch_norm: expected more than 1 value per channel when training, got " +
                                std::to_string(count) + " over all ranks (this rank's input " +
                                shape_str(x.shape()) + ")");
  Tensor mean64 = mul(stats.narrow(0, 0, C), 1.0 / count_d);
  Tensor var64 = clamp(sub(mul(stats.narrow(0, C, C), 1.0 / count_d), mul(mean64, mean64)), 0.0, std::nullopt);
  Tensor mean = mean64.to(x.dtype()).contiguous(), var = var64.to(x.dtype()).contiguous();

  Tensor y = empty(x.shape(), x.options());
  // batch_norm's kernel in eval mode normalises with the given (global) statistics.
  if (x.numel() > 0) batch_norm_fwd_stub(x.device())(xc, wc, bc, mean, var, /*training=*/false, eps, relu, y);
  update_running_stats(running_mean, running_var, mean64, var64, momentum, count);

  if (any_requires_grad({x, weight, bias})) {
    const bool gx_needed = x.requires_grad(), gw_needed = weight.defined() && weight.requires_grad();
    const bool gb_needed = bias.defined() && bias.requires_grad();
    Tensor relu_y = relu ? y.detach() : Tensor();
    record(relu ? "SyncBatchNormReluBackward" : "SyncBatchNormBackward", y, {x, weight, bias},
           [xc, wc, mean, var, relu_y, eps, group, count_d, gx_needed, gw_needed, gb_needed](
               const Tensor& g_in) -> TensorList {
             Tensor g = g_in.contiguous();
             const int64_t C = xc.size(1);
             // The kernel in eval mode: gx = weight * invstd * dy, gw = sum(dy * xhat), gb = sum(dy).
             Tensor gx = gx_needed ? empty(xc.shape(), xc.options()) : Tensor();
             Tensor gw = zeros({C}, xc.options()), gb = zeros({C}, xc.options());
             if (xc.numel() > 0)
               batch_norm_bwd_stub(g.device())(xc, g, relu_y, wc, mean, var, /*training=*/false, eps, gx, gw, gb);
             if (gx_needed) {
               // [sum(dy), sum(dy * xhat)] over all ranks; only the input gradient needs them.
               Tensor sums = cat({gb, gw}).to(DType::F64);
               group->allreduce(sums);
               // dx = a * dy + b * (x - mean) + k: a (already in gx) = weight * invstd,
               // b = -a * invstd * sum(dy * xhat) / count, k = -a * sum(dy) / count.
               Tensor mean64 = mean.to(DType::F64), invstd = rsqrt(add(var.to(DType::F64), eps));
               Tensor a = wc.defined() ? mul(wc.to(DType::F64), invstd) : invstd;
               Tensor b = mul(mul(a, invstd), mul(sums.narrow(0, C, C), -1.0 / count_d));
               Tensor k = sub(mul(a, mul(sums.narrow(0, 0, C), -1.0 / count_d)), mul(b, mean64));
               if (xc.numel() > 0)
                 add_(gx, add(mul(xc, per_channel(b.to(xc.dtype()), xc)), per_channel(k.to(xc.dtype()), xc)));
             }
             return {gx, gw_needed ? gw : Tensor(), gb_needed ? gb : Tensor()};
           });
  }
  return y;
}

}  // namespace dl
