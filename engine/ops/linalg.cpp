#include "engine/ops/linalg.h"

#include <stdexcept>

#include "engine/amp/autocast.h"
#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "kernels/gemm.h"

namespace dl {
namespace {

// A 2-d operand as gemm sees it: row-major (trans = false) or the transpose of a row-major
// block (trans = true). Copies only when neither layout fits.
struct GemmOperand {
  Tensor t;
  bool trans = false;
  int64_t ld = 0;
};

GemmOperand as_gemm_operand(const Tensor& x) {
  const int64_t r = x.size(0), c = x.size(1);
  if (x.stride(1) == 1 && (x.stride(0) >= std::max<int64_t>(c, 1) || r == 1))
    return {x, false, std::max<int64_t>(x.stride(0), std::max<int64_t>(c, 1))};
  if (x.stride(0) == 1 && (x.stride(1) >= std::max<int64_t>(r, 1) || c == 1))
    return {x, true, std::max<int64_t>(x.stride(1), std::max<int64_t>(r, 1))};
  Tensor y = x.contiguous();
  return {y, false, std::max<int64_t>(c, 1)};
}

// out[M, N] (contiguous) = alpha * a[M, K] @ b[K, N] + beta * out. No autograd.
void gemm_into(const Tensor& a, const Tensor& b, Tensor& out, double beta = 0.0) {
  GemmOperand A = as_gemm_operand(a), B = as_gemm_operand(b);
  GemmArgs g;
  g.trans_a = A.trans;
  g.trans_b = B.trans;
  g.m = a.size(0);
  g.k = a.size(1);
  g.n = b.size(1);
  g.alpha = 1.0;
  g.beta = beta;
  g.a = A.t.raw_data();
  g.lda = A.ld;
  g.b = B.t.raw_data();
  g.ldb = B.ld;
  g.c = out.raw_data();
  g.ldc = std::max<int64_t>(g.n, 1);
  g.dtype = a.dtype();
  g.device_index = a.device().index;
  gemm_stub(a.device())(g);
}

void check_mm(const Tensor& a, const Tensor& b, const char* op) {
  if (a.device() != b.device())
    throw std::invalid_argument(std::string(op) + ": tensors on different devices (" +
                                a.device().str() + ", " + b.device().str() + ")");
  if (a.dtype() != b.dtype())
    throw std::invalid_argument(std::string(op) + ": dtype mismatch (" + dtype_name(a.dtype()) +
                                " vs " + dtype_name(b.dtype()) + ")");
}

Tensor mm_raw(const Tensor& a, const Tensor& b) {
  Tensor out = empty({a.size(0), b.size(1)}, a.options());
  gemm_into(a, b, out);
  return out;
}

// Batched [B, M, K] x [B, K, N] without autograd (both already broadcast to B).
Tensor bmm_raw(const Tensor& a, const Tensor& b) {
  const int64_t B = a.size(0);
  Tensor out = empty({B, a.size(1), b.size(2)}, a.options());
  for (int64_t i = 0; i < B; ++i) {
    Tensor oi = out.select(0, i);
    gemm_into(a.select(0, i), b.select(0, i), oi);
  }
  return out;
}

}  // namespace

Tensor mm(const Tensor& a_in, const Tensor& b_in) {
  const auto in = amp::autocast(amp::CastPolicy::Lower, a_in, b_in);
  const Tensor &a = in[0], &b = in[1];
  check_mm(a, b, "mm");
  if (a.dim() != 2 || b.dim() != 2 || a.size(1) != b.size(0))
    throw std::invalid_argument("mm: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                                " cannot be multiplied");
  Tensor out = mm_raw(a.detach(), b.detach());
  if (any_requires_grad({a, b})) {
    bool ga = a.requires_grad(), gb = b.requires_grad();
    record("MmBackward", out, {a, b}, [ad = a.detach(), bd = b.detach(), ga, gb](const Tensor& g) -> TensorList {
      return {ga ? mm_raw(g, bd.t()) : Tensor(), gb ? mm_raw(ad.t(), g) : Tensor()};
    });
  }
  return out;
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  const auto in = amp::autocast(amp::CastPolicy::Lower, a_in, b_in);
  const Tensor &a = in[0], &b = in[1];
  check_mm(a, b, "matmul");
  if (a.dim() == 0 || b.dim() == 0) throw std::invalid_argument("matmul: both arguments need at least 1 dim");
  if (a.dim() == 1 && b.dim() == 1) return sum(mul(a, b));
  if (a.dim() == 2 && b.dim() == 2) return mm(a, b);
  if (a.dim() == 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul(a, b.unsqueeze(1)).squeeze(-1);
  if (b.dim() == 2) {  // [..., M, K] x [K, N]: fold the batch into M
    Shape lead(a.shape().begin(), a.shape().end() - 1);
    Tensor out = mm(a.reshape({-1, a.size(-1)}), b);
    lead.push_back(b.size(1));
    return out.reshape(lead);
  }
  // Batched with broadcasting of the batch dims.
  if (a.size(-1) != b.size(-2))
    throw std::invalid_argument("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                                " cannot be multiplied");
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb);
  Shape ea = batch, eb = batch;
  ea.push_back(a.size(-2)); ea.push_back(a.size(-1));
  eb.push_back(b.size(-2)); eb.push_back(b.size(-1));
  Tensor a3 = a.expand(ea).reshape({-1, a.size(-2), a.size(-1)});
  Tensor b3 = b.expand(eb).reshape({-1, b.size(-2), b.size(-1)});
  Tensor out = bmm_raw(a3.detach(), b3.detach());
  if (any_requires_grad({a3, b3})) {
    bool ga = a3.requires_grad(), gb = b3.requires_grad();
    record("BmmBackward", out, {a3, b3}, [ad = a3.detach(), bd = b3.detach(), ga, gb](const Tensor& g) -> TensorList {
      return {ga ? bmm_raw(g, bd.transpose(1, 2)) : Tensor(), gb ? bmm_raw(ad.transpose(1, 2), g) : Tensor()};
    });
  }
  Shape out_shape = batch;
  out_shape.push_back(a.size(-2));
  out_shape.push_back(b.size(-1));
  return out.reshape(out_shape);
}

Tensor linear(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in) {
  const auto in = amp::autocast(amp::CastPolicy::Lower, x_in, weight_in, bias_in);
  const Tensor &x = in[0], &weight = in[1], &bias = in[2];
  check_mm(x, weight, "linear");
  if (weight.dim() != 2 || x.dim() < 1 || x.size(-1) != weight.size(1))
    throw std::invalid_argument("linear: input " + shape_str(x.shape()) + " does not match weight " +
                                shape_str(weight.shape()) + " (expected input [..., " +
                                std::to_string(weight.dim() == 2 ? weight.size(1) : -1) + "])");
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0)))
    throw std::invalid_argument("linear: bias " + shape_str(bias.shape()) + " does not match weight " +
                                shape_str(weight.shape()));
  Shape out_shape(x.shape().begin(), x.shape().end() - 1);
  out_shape.push_back(weight.size(0));
  Tensor x2 = x.detach().reshape({-1, x.size(-1)});
  Tensor out = empty({x2.size(0), weight.size(0)}, x.options());
  double beta = 0.0;
  if (bias.defined()) {  // out = bias (broadcast rows), then out += x W^T
    out.copy_(bias.detach().expand(out.shape()));
    beta = 1.0;
  }
  gemm_into(x2, weight.detach().t(), out, beta);
  out = out.reshape(out_shape);
  if (any_requires_grad({x, weight, bias})) {
    bool gx = x.requires_grad(), gw = weight.requires_grad(), gbias = bias.defined() && bias.requires_grad();
    Shape x_shape = x.shape();
    record("LinearBackward", out, {x, weight, bias},
           [x2, wd = weight.detach(), gx, gw, gbias, x_shape](const Tensor& g_in) -> TensorList {
             Tensor g = g_in.reshape({-1, g_in.size(-1)});
             Tensor grad_x, grad_w, grad_b;
             if (gx) grad_x = mm_raw(g, wd).reshape(x_shape);
             if (gw) grad_w = mm_raw(g.t(), x2);
             if (gbias) grad_b = sum(g, {0});
             return {grad_x, grad_w, grad_b};
           });
  }
  return out;
}

}  // namespace dl
