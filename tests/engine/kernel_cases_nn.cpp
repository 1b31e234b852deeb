// Kernel cases (tests/support/kernel_cases.h) for convolution (conv2d and conv_transpose2d),
// pooling (max, average, adaptive average) and batch norm (training, eval, fused ReLU), forward
// and backward. cuDNN's float32 convolutions sum in another order than oneDNN's: rtol 1e-4,
// atol 1e-5 for them.
#include "engine/ops.h"
#include "engine/ops/conv_transpose.h"
#include "tests/support/kernel_cases.h"

using namespace dl;
using dl::test::case_randn;
using dl::test::with_grads;

namespace {

// conv2d on x [n, c, h, w] with weight [o, c / groups, k, k] and optionally a bias, forward
// and backward (input, weight and bias gradients).
std::vector<Tensor> conv_case(const Device& d, DType t, Shape xs, int64_t o, int64_t k, bool with_bias, Pair stride,
                              Pair padding, Pair dilation, int64_t groups, uint64_t seed) {
  Tensor x = case_randn(xs, seed, d, true, t);
  Tensor w = case_randn({o, xs[1] / groups, k, k}, seed + 1, d, true, t);
  Tensor b = with_bias ? case_randn({o}, seed + 2, d, true, t) : Tensor();
  Tensor y = conv2d(x, w, b, stride, padding, dilation, groups);
  std::vector<Tensor> leaves{x, w};
  if (with_bias) leaves.push_back(b);
  return with_grads({y}, y, leaves, seed + 3);
}

// batch_norm (or batch_norm_relu) of x with optional affine parameters and running statistics;
// returns y, the running statistics and the gradients.
std::vector<Tensor> bn_case(const Device& d, DType t, Shape xs, bool affine, bool training, bool relu,
                            uint64_t seed) {
  const int64_t c = xs[1];
  Tensor x = case_randn(xs, seed, d, true, t);
  Tensor w = affine ? case_randn({c}, seed + 1, d, true, t) : Tensor();
  Tensor b = affine ? case_randn({c}, seed + 2, d, true, t) : Tensor();
  // Running statistics: non-trivial values (a positive variance) so eval mode is exercised.
  Tensor rm = case_randn({c}, seed + 3, d, false, t);
  Tensor rv = dl::test::case_uniform({c}, seed + 4, 0.5, 2.0, d, false, t);
  Tensor y = relu ? batch_norm_relu(x, w, b, rm, rv, training, 0.1, 1e-5)
                  : batch_norm(x, w, b, rm, rv, training, 0.1, 1e-5);
  std::vector<Tensor> leaves{x};
  if (affine) {
    leaves.push_back(w);
    leaves.push_back(b);
  }
  return with_grads({y, rm, rv}, y, leaves, seed + 5);
}

const std::vector<std::string> kConvStubs{"conv2d_fwd_stub", "conv2d_bwd_data_stub", "conv2d_bwd_weights_stub"};
const std::vector<std::string> kBnStubs{"batch_norm_fwd_stub", "batch_norm_bwd_stub", "binary_stub", "copy_stub"};

}  // namespace

DL_KERNEL_CASE(conv2d_bias_stride_pad, kConvStubs,
               "conv2d f32 2x3x11x10 -> 5 filters 3x3 with bias, stride 2, padding 1, forward + backward",
               [](const Device& d) {
                 return conv_case(d, DType::F32, {2, 3, 11, 10}, 5, 3, true, {2, 2}, {1, 1}, {1, 1}, 1, 101);
               },
               1e-4, 1e-5);

DL_KERNEL_CASE(conv2d_dilated_grouped, kConvStubs,
               "conv2d f32 2x4x12x11 -> 6 filters 3x3, groups 2, dilation 2, padding (2, 1), stride (1, 2), "
               "no bias, forward + backward",
               [](const Device& d) {
                 return conv_case(d, DType::F32, {2, 4, 12, 11}, 6, 3, false, {1, 2}, {2, 1}, {2, 2}, 2, 111);
               },
               1e-4, 1e-5);

DL_KERNEL_CASE(conv2d_f64_everything, kConvStubs,
               "conv2d f64 3x4x9x8 -> 4 filters 3x3 with bias, groups 2, stride 2, padding 1, dilation 2, "
               "forward + backward",
               [](const Device& d) {
                 return conv_case(d, DType::F64, {3, 4, 9, 8}, 4, 3, true, {2, 2}, {1, 1}, {2, 2}, 2, 121);
               },
               1e-10, 1e-12);

DL_KERNEL_CASE(conv2d_half_types, {"conv2d_fwd_stub", "conv2d_bwd_data_stub", "conv2d_bwd_weights_stub", "copy_stub"},
               "conv2d in float16 and bfloat16 (f32 leaves cast down, as autocast does): 2x4x7x6 -> 6 filters 3x3 "
               "with bias, groups 2, padding 1, forward + backward; results rounded to the half type, so "
               "tolerances of about one ulp",
               [](const Device& d) {
                 std::vector<Tensor> out;
                 for (DType low : {DType::F16, DType::BF16}) {
                   const uint64_t seed = low == DType::F16 ? 221 : 231;
                   Tensor x = case_randn({2, 4, 7, 6}, seed, d, true);
                   Tensor w = case_randn({6, 2, 3, 3}, seed + 1, d, true);
                   Tensor b = case_randn({6}, seed + 2, d, true);
                   Tensor y = conv2d(x.to(low), w.to(low), b.to(low), {1, 1}, {1, 1}, {1, 1}, 2).to(DType::F32);
                   std::vector<Tensor> r = with_grads({y}, y, {x, w, b}, seed + 3);
                   out.insert(out.end(), r.begin(), r.end());
                 }
                 return out;
               },
               1.0 / 64, 2e-2);

DL_KERNEL_CASE(conv_transpose2d_output_padding,
               {"conv2d_fwd_stub", "conv2d_bwd_data_stub", "conv2d_bwd_weights_stub", "sum_stub", "binary_stub"},
               "conv_transpose2d f32 2x4x5x6 -> 3 channels 3x3 with bias, stride 2, padding 1, output_padding 1; "
               "and groups 2, dilation 2, stride 1, output_padding 1 (>= stride: the y-space cuDNN refuses), "
               "forward + backward",
               [](const Device& d) {
                 Tensor x = case_randn({2, 4, 5, 6}, 131, d, true);
                 Tensor w = case_randn({4, 3, 3, 3}, 132, d, true);
                 Tensor b = case_randn({3}, 133, d, true);
                 Tensor w2 = case_randn({4, 2, 3, 3}, 134, d, true);
                 Tensor y1 = conv_transpose2d(x, w, b, {2, 2}, {1, 1}, {1, 1});
                 Tensor y2 = conv_transpose2d(x, w2, Tensor(), {1, 1}, {1, 1}, {1, 1}, 2, {2, 2});
                 Tensor y = y1.sum() * 0.5 + (y1 * y1).sum() * 0.1 + (y2 * y2).sum() * 0.1;
                 return with_grads({y1, y2}, y, {x, w, b, w2}, 135);
               },
               1e-4, 1e-5);

DL_KERNEL_CASE(max_pool2d_ceil_padding, {"pool2d_fwd_stub", "pool2d_bwd_stub"},
               "max_pool2d f32 2x3x9x8, kernel 3, stride 2, padding 1, ceil_mode (overlapping windows, "
               "argmax workspace), forward + backward; and kernel 2 stride 2 in f64",
               [](const Device& d) {
                 Tensor x = case_randn({2, 3, 9, 8}, 141, d, true);
                 Tensor y = max_pool2d(x, {3, 3}, {2, 2}, {1, 1}, true);
                 std::vector<Tensor> out = with_grads({y}, y, {x}, 142);
                 Tensor x2 = case_randn({2, 2, 6, 7}, 143, d, true, DType::F64);
                 Tensor y2 = max_pool2d(x2, {2, 2}, {2, 2});
                 std::vector<Tensor> out2 = with_grads({y2}, y2, {x2}, 144);
                 out.insert(out.end(), out2.begin(), out2.end());
                 return out;
               });

DL_KERNEL_CASE(avg_pool2d_both_divisors, {"pool2d_fwd_stub", "pool2d_bwd_stub", "binary_stub"},
               "avg_pool2d f32 2x3x9x8, kernel 3, stride 2, padding 1, ceil_mode, count_include_pad true and "
               "false (and an f64 kernel (3, 2) stride (2, 1) without padding), forward + backward",
               [](const Device& d) {
                 Tensor x = case_randn({2, 3, 9, 8}, 151, d, true);
                 Tensor a = avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}, true, true);
                 Tensor e = avg_pool2d(x, {3, 3}, {2, 2}, {1, 1}, true, false);
                 Tensor y = a.sum() + (e * e).sum();
                 std::vector<Tensor> out = with_grads({a, e}, y, {x}, 152);
                 Tensor x2 = case_randn({2, 2, 7, 5}, 153, d, true, DType::F64);
                 Tensor y2 = avg_pool2d(x2, {3, 2}, {2, 1});
                 std::vector<Tensor> out2 = with_grads({y2}, y2, {x2}, 154);
                 out.insert(out.end(), out2.begin(), out2.end());
                 return out;
               });

DL_KERNEL_CASE(adaptive_avg_pool2d_non_divisor, {"adaptive_avg_pool2d_fwd_stub", "adaptive_avg_pool2d_bwd_stub"},
               "adaptive_avg_pool2d f32 2x3x7x7 -> 3x3 (overlapping windows) and f64 2x2x5x9 -> 2x4, forward + "
               "backward",
               [](const Device& d) {
                 Tensor x = case_randn({2, 3, 7, 7}, 161, d, true);
                 Tensor y = adaptive_avg_pool2d(x, {3, 3});
                 std::vector<Tensor> out = with_grads({y}, y, {x}, 162);
                 Tensor x2 = case_randn({2, 2, 5, 9}, 163, d, true, DType::F64);
                 Tensor y2 = adaptive_avg_pool2d(x2, {2, 4});
                 std::vector<Tensor> out2 = with_grads({y2}, y2, {x2}, 164);
                 out.insert(out.end(), out2.begin(), out2.end());
                 return out;
               });

DL_KERNEL_CASE(batch_norm_training_affine, kBnStubs,
               "batch_norm f32 training, affine, 4x3x5x6: y, running statistics, gradients of x, weight, bias",
               [](const Device& d) { return bn_case(d, DType::F32, {4, 3, 5, 6}, true, true, false, 171); },
               1e-4, 1e-5);

DL_KERNEL_CASE(batch_norm_training_plain_2d, kBnStubs,
               "batch_norm f64 training, no affine parameters, [N, C] input 16x5: y, running statistics, "
               "gradient of x",
               [](const Device& d) { return bn_case(d, DType::F64, {16, 5}, false, true, false, 181); },
               1e-10, 1e-12);

DL_KERNEL_CASE(batch_norm_split_channels, kBnStubs,
               "batch_norm with channels of more than 4,096 elements, which the CUDA kernels cut into ranges "
               "(partial sums): f32 training + ReLU 20x3x17x19 (2 ranges), f32 training affine 9x2x40x40 (4), "
               "f64 [N, C] 10000x3 (3, the last one shorter), f32 eval 9x2x40x40: y, running statistics, gradients",
               [](const Device& d) {
                 std::vector<Tensor> out = bn_case(d, DType::F32, {20, 3, 17, 19}, true, true, true, 221);
                 for (const auto& part : {bn_case(d, DType::F32, {9, 2, 40, 40}, true, true, false, 231),
                                          bn_case(d, DType::F64, {10000, 3}, false, true, false, 241),
                                          bn_case(d, DType::F32, {9, 2, 40, 40}, true, false, false, 251)})
                   out.insert(out.end(), part.begin(), part.end());
                 return out;
               },
               1e-4, 1e-5);

DL_KERNEL_CASE(batch_norm_eval, kBnStubs,
               "batch_norm f32 eval mode from running statistics, affine, 3x4x5x5: y and gradients",
               [](const Device& d) { return bn_case(d, DType::F32, {3, 4, 5, 5}, true, false, false, 191); },
               1e-4, 1e-5);

DL_KERNEL_CASE(batch_norm_relu_fused, kBnStubs,
               "batch_norm_relu (batch norm + ReLU fused) f32, training and eval, affine, 4x3x4x5: y, running "
               "statistics and gradients through the ReLU mask",
               [](const Device& d) {
                 std::vector<Tensor> out = bn_case(d, DType::F32, {4, 3, 4, 5}, true, true, true, 201);
                 std::vector<Tensor> ev = bn_case(d, DType::F32, {4, 3, 4, 5}, true, false, true, 211);
                 out.insert(out.end(), ev.begin(), ev.end());
                 return out;
               },
               1e-4, 1e-5);
