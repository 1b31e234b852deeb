// Kernel cases (tests/support/kernel_cases.h) for the elementwise, copy, reduction, softmax,
// GEMM and random kernels. Each runs forward and, where the op is differentiable, backward
// with a fixed upstream gradient, so the backward kernels are compared too.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "engine/ops.h"
#include "kernels/elementwise.h"
#include "tests/support/kernel_cases.h"

using namespace dl;
using dl::test::case_randint;
using dl::test::case_randn;
using dl::test::case_uniform;
using dl::test::with_grads;

DL_KERNEL_CASE(unary_activations, {"unary_stub", "binary_stub"},
               "relu, leaky_relu, elu, gelu (both), sigmoid, tanh, softplus, clamp, exp on a 33x17 f32 "
               "and their fused backwards",
               [](const Device& d) {
                 Tensor x = case_randn({33, 17}, 11, d, true);
                 Tensor y = relu(x) + leaky_relu(x, 0.1) + elu(x, 1.3) + gelu(x) + gelu(x, "tanh") +
                            sigmoid(x) + tanh(x) + softplus(x, 2.0, 1.5) + clamp(x, -0.5, 0.7) + exp(x * 0.3);
                 return with_grads({y}, y, {x}, 12);
               });

DL_KERNEL_CASE(unary_positive_domain, {"unary_stub", "binary_stub"},
               "log, sqrt, rsqrt, pow(x, 0.5 / -1.7 / 3), abs, neg, sign on positive and mixed f64 inputs",
               [](const Device& d) {
                 Tensor x = case_uniform({9, 13}, 21, 0.5, 3.5, d, true, DType::F64);
                 Tensor z = case_randn({9, 13}, 22, d, false, DType::F64);
                 Tensor y = log(x) + sqrt(x) + rsqrt(x) + pow(x, 0.5) + pow(x, -1.7) + pow(x, 3.0) +
                            abs(z) * x - neg(x) + sign(z);
                 return with_grads({y}, y, {x}, 23);
               });

DL_KERNEL_CASE(binary_broadcast, {"binary_stub", "sum_stub"},
               "add/sub/mul/div/pow/maximum/minimum with broadcasting [4,1,5] x [3,5] and comparisons",
               [](const Device& d) {
                 Tensor a = case_uniform({4, 1, 5}, 31, 0.5, 2.0, d, true);
                 Tensor b = case_uniform({3, 5}, 32, 0.5, 2.0, d, true);
                 Tensor y = add(a, b, 0.5) + sub(a, b, 2.0) + a * b + a / b + pow(a, b) + maximum(a, b) +
                            minimum(a, b);
                 Tensor cmp = (gt(a, b).to(DType::F32) + le(a, b).to(DType::F32) + eq(a, a).to(DType::F32));
                 return with_grads({y, cmp}, y, {a, b}, 33);
               });

DL_KERNEL_CASE(where_copy_fill, {"where_stub", "copy_stub", "fill_stub"},
               "where with broadcasting, dtype casts f32->f64->i64, a strided copy and full",
               [](const Device& d) {
                 Tensor a = case_randn({6, 7}, 41, d, true);
                 Tensor b = case_randn({7}, 42, d, true);
                 Tensor y = where(gt(a, 0.0), a, b);
                 Tensor casts = a.detach().to(DType::F64).to(DType::I64).to(DType::F32);
                 Tensor strided = a.detach().t().contiguous();
                 Tensor filled = full({3, 4}, 2.5, TensorOptions(DType::F32, d));
                 return with_grads({y, casts, strided, filled}, y, {a, b}, 43);
               },
               1e-6, 1e-7);

DL_KERNEL_CASE(reductions, {"sum_stub", "var_stub", "arg_reduce_stub"},
               "sum/mean over inner, outer and all dims, var/std (correction 0 and 1), max/min/argmax",
               [](const Device& d) {
                 Tensor x = case_randn({5, 6, 7}, 51, d, true);
                 Tensor s = sum(x, {1}).sum() + mean(x, {0, 2}).sum() + sum(x) + var(x, {2}, 0).sum() +
                            dl::std(x, {0}, 1).sum() + max(x) - min(x);
                 Tensor am = argmax(x.detach(), 1).to(DType::F32);
                 Tensor amin = argmin(x.detach(), 2).to(DType::F32);
                 return with_grads({s, am, amin}, s, {x}, 52);
               });

DL_KERNEL_CASE(softmax_both, {"softmax_stub", "softmax_backward_stub"},
               "softmax over dim 1 and log_softmax over the last dim of a 4x9x5, forward and backward",
               [](const Device& d) {
                 Tensor x = case_randn({4, 9, 5}, 61, d, true);
                 Tensor y = softmax(x, 1) * 3.0 + log_softmax(x, -1);
                 return with_grads({y}, y, {x}, 62);
               });

DL_KERNEL_CASE(gemm_linear, {"gemm_stub"},
               "linear 13x31 -> 17 with bias and a batched matmul with a transposed operand, forward "
               "and backward",
               [](const Device& d) {
                 Tensor x = case_randn({13, 31}, 71, d, true);
                 Tensor w = case_randn({17, 31}, 72, d, true);
                 Tensor bias = case_randn({17}, 73, d, true);
                 Tensor a = case_randn({3, 5, 8}, 74, d, true);
                 Tensor b = case_randn({3, 6, 8}, 75, d, true);
                 Tensor y1 = linear(x, w, bias);
                 Tensor y2 = matmul(a, b.transpose(1, 2));
                 Tensor y = y1.sum() + y2.sum() * 0.5 + (y1 * y1).sum() * 0.01;
                 return with_grads({y1, y2}, y, {x, w, bias, a, b}, 76);
               },
               1e-5, 1e-5);

DL_KERNEL_CASE(random_streams, {"random_fill_stub"},
               "uniform, normal and bernoulli from the same Philox generator state",
               [](const Device& d) {
                 Generator g(81);
                 Tensor u = rand({1000}, g, TensorOptions(DType::F32, d));
                 Tensor n = randn({3, 333}, g, TensorOptions(DType::F64, d));
                 Tensor b = bernoulli({257}, 0.3, g, TensorOptions(DType::F32, d));
                 return std::vector<Tensor>{u, n, b};
               },
               0.0, 0.0, true);

DL_KERNEL_CASE(all_finite_check, {"all_finite_stub"},
               "all_finite on finite, NaN and inf tensors",
               [](const Device& d) {
                 Tensor x = case_randn({100}, 91, d);
                 Tensor nan = x * std::numeric_limits<double>::quiet_NaN();
                 Tensor inf = x / 0.0;
                 std::vector<float> flags = {isfinite_all(x) ? 1.f : 0.f, isfinite_all(nan) ? 1.f : 0.f,
                                             isfinite_all(inf) ? 1.f : 0.f};
                 return std::vector<Tensor>{from_vector<float>(flags, {3})};
               },
               0.0, 0.0, true);

// Every UnaryOp and BinaryOp enumerator, for every dtype the CPU kernel supports (found by
// asking it, not from a list), on contiguous, transposed and broadcast operands, with three sets
// of scalar arguments (0.7/1.3 generic; 2 and 0.5 for PowScalar's square and sqrt paths). Float
// inputs come mixed-sign and positive (log, sqrt, pow); a result that is not finite on the CPU
// (log of a negative) is left out, the same on every device.
namespace {

constexpr int kUnaryOps = static_cast<int>(UnaryOp::LogicalNot) + 1;
constexpr int kBinaryOps = static_cast<int>(BinaryOp::ClampBackward) + 1;

// The op on the CPU first: unsupported dtype -> no result; non-finite result -> left out.
template <class Run>
void collect(std::vector<Tensor>& out, const Device& d, Run run) {
  Tensor cpu;
  try {
    cpu = run(Device::cpu());
  } catch (const std::invalid_argument&) {
    return;  // the CPU kernel has no version for this dtype: neither must any device
  }
  Tensor cpu_f = cpu.to(DType::F64);
  if (!isfinite_all(cpu_f)) return;
  out.push_back((d.is_cpu() ? cpu : run(d)).to(DType::F64));
}

Tensor inputs_for(DType t, uint64_t seed, bool positive, const Shape& shape, const Device& d) {
  if (t == DType::Bool) return gt(case_randn(shape, seed, d), 0.0);
  if (t == DType::I64 || t == DType::U8) {
    Tensor v = case_randint(shape, seed, 9, d);  // 0..8
    return (t == DType::I64 && !positive ? v - 4 : v).to(t);
  }
  return positive ? case_uniform(shape, seed, 0.5, 3.5, d, false, t) : mul(case_randn(shape, seed, d, false, t), 2.0);
}

}  // namespace

DL_KERNEL_CASE(every_elementwise_op, {"unary_stub", "binary_stub"},
               "every UnaryOp and BinaryOp for every dtype its CPU kernel takes: contiguous, transposed and "
               "broadcast operands, three scalar-argument sets",
               [](const Device& d) {
                 std::vector<Tensor> out;
                 const ScalarArgs args[] = {{0.7, 1.3}, {2.0, 20.0}, {0.5, 20.0}};
                 uint64_t seed = 1000;
                 for (DType t : {DType::F32, DType::F64, DType::I64, DType::U8, DType::Bool}) {
                   for (bool positive : {false, true}) {
                     for (const ScalarArgs& s : args) {
                       for (int k = 0; k < kUnaryOps; ++k) {
                         const auto op = static_cast<UnaryOp>(k);
                         const DType out_t = op == UnaryOp::LogicalNot ? DType::Bool : t;
                         const uint64_t sd = ++seed;
                         collect(out, d, [&](const Device& dev) {
                           Tensor x = inputs_for(t, sd, positive, {7, 5}, dev);
                           Tensor y = empty({5, 7}, TensorOptions(out_t, dev));
                           unary_stub(dev)(op, s, x.t(), y);  // a transposed (strided) input
                           return y;
                         });
                       }
                       for (int k = 0; k < kBinaryOps; ++k) {
                         const auto op = static_cast<BinaryOp>(k);
                         const DType out_t = is_comparison(op) ? DType::Bool : t;
                         const uint64_t sd = ++seed;
                         collect(out, d, [&](const Device& dev) {
                           Tensor a = inputs_for(t, sd, positive, {4, 1, 5}, dev);
                           Tensor b = inputs_for(t, sd + 7919, true, {3, 1}, dev);  // b > 0: division
                           Tensor y = empty({4, 3, 5}, TensorOptions(out_t, dev));
                           binary_stub(dev)(op, s, a, b, y);
                           return y;
                         });
                       }
                     }
                   }
                 }
                 return out;
               });
