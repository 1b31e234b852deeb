// The CPU batch norm kernel (kernels/cpu/norm.cpp) against a long-double reference: vectorised
// row sums of every length (tails included), per-row two-pass statistics combined over the
// batch (Chan et al.), and the backward sums. test_nn_ops.cpp checks the same op against
// PyTorch fixtures; this one checks the numerics the fixtures do not reach (large means, odd
// row lengths, f64 to ~1e-12).
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "engine/ops.h"
#include "kernels/cpu/isa.h"

using namespace dl;

namespace {

struct Reference {
  std::vector<long double> mean, var, y, gx, gw, gb;
};

// Training-mode batch norm of x [n, c, s] (w, b per channel; gy like x), in long double.
Reference reference_bn(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& b,
                       const std::vector<double>& gy, int64_t n, int64_t c, int64_t s, double eps) {
  Reference r;
  const long double m = static_cast<long double>(n * s);
  r.mean.assign(c, 0.0L);
  r.var.assign(c, 0.0L);
  auto at = [&](int64_t i, int64_t ch, int64_t j) { return (i * c + ch) * s + j; };
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < s; ++j) r.mean[ch] += x[at(i, ch, j)];
    r.mean[ch] /= m;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < s; ++j) {
        long double v = x[at(i, ch, j)] - r.mean[ch];
        r.var[ch] += v * v;
      }
    r.var[ch] /= m;
  }
  r.y.resize(x.size());
  r.gx.resize(x.size());
  r.gw.assign(c, 0.0L);
  r.gb.assign(c, 0.0L);
  for (int64_t ch = 0; ch < c; ++ch) {
    const long double invstd = 1.0L / std::sqrt(r.var[ch] + eps);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < s; ++j) {
        const int64_t k = at(i, ch, j);
        const long double xhat = (x[k] - r.mean[ch]) * invstd;
        r.y[k] = xhat * w[ch] + b[ch];
        r.gb[ch] += gy[k];
        r.gw[ch] += gy[k] * xhat;
      }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < s; ++j) {
        const int64_t k = at(i, ch, j);
        const long double xhat = (x[k] - r.mean[ch]) * invstd;
        r.gx[k] = w[ch] * invstd * (gy[k] - r.gb[ch] / m - xhat * r.gw[ch] / m);
      }
  }
  return r;
}

// max |a - b| / (atol_scale + |b|) over the elements.
double max_rel_err(const std::vector<double>& a, const std::vector<long double>& b, double atol_scale) {
  REQUIRE(a.size() == b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const long double err = std::fabs(static_cast<long double>(a[i]) - b[i]) / (atol_scale + std::fabs(b[i]));
    worst = std::max(worst, static_cast<double>(err));
  }
  return worst;
}

}  // namespace

TEST_CASE("batch_norm kernel: f64 statistics and gradients to rounding for large means and any row length",
          "[nn][bn]") {
  Generator gen(71);
  // Row lengths below, at and past the vector widths, with tails; s = 1 is the [N, C] input.
  for (const Shape& shape : {Shape{6, 3}, Shape{3, 2, 7}, Shape{2, 3, 7, 7}, Shape{4, 2, 3, 5}, Shape{2, 2, 33}}) {
    for (double offset : {0.0, 1e8}) {
      INFO("shape " << shape_str(shape) << " offset " << offset);
      const int64_t n = shape[0], c = shape[1], s = shape_numel(shape) / (n * c);
      // offset + N(0, 1): a one-pass E[x^2] - E[x]^2 loses every digit of the variance at 1e8.
      Tensor x = add(randn(shape, gen, DType::F64), offset).requires_grad_();
      Tensor w = add(rand({c}, gen, DType::F64), 0.5).requires_grad_(), b = randn({c}, gen, DType::F64).requires_grad_();
      Tensor gy = randn(shape, gen, DType::F64);
      Tensor rm = zeros({c}, DType::F64), rv = zeros({c}, DType::F64);
      Tensor y = batch_norm(x, w, b, rm, rv, true, /*momentum=*/1.0, 1e-5);
      y.backward(gy);
      Reference r = reference_bn(x.to_vector<double>(), w.to_vector<double>(), b.to_vector<double>(),
                                 gy.to_vector<double>(), n, c, s, 1e-5);
      // momentum 1: running_mean = mean, running_var = unbiased variance. The inputs themselves
      // are only known to ~1e-16 * offset, so the results can be no closer than that (relative to
      // the unit standard deviation); a one-pass variance would be off by O(1) at 1e8.
      const double tol = 1e-13 + 1e-15 * offset;
      std::vector<long double> unbiased(r.var);
      for (auto& v : unbiased) v *= static_cast<long double>(n * s) / static_cast<long double>(n * s - 1);
      CHECK(max_rel_err(rm.to_vector<double>(), r.mean, 1e-300) < 1e-14);
      CHECK(max_rel_err(rv.to_vector<double>(), unbiased, 1e-300) < tol);
      CHECK(max_rel_err(y.to_vector<double>(), r.y, 1.0) < tol);
      CHECK(max_rel_err(x.grad().to_vector<double>(), r.gx, 1.0) < tol);
      CHECK(max_rel_err(w.grad().to_vector<double>(), r.gw, 1.0) < tol);
      CHECK(max_rel_err(b.grad().to_vector<double>(), r.gb, 1.0) < 1e-13);
    }
  }
}

TEST_CASE("batch_norm kernel: f32 matches the long-double reference to float rounding", "[nn][bn]") {
  Generator gen(72);
  for (const Shape& shape : {Shape{64, 16, 28, 28}, Shape{8, 5, 7, 7}, Shape{33, 4}}) {
    INFO("shape " << shape_str(shape));
    const int64_t n = shape[0], c = shape[1], s = shape_numel(shape) / (n * c);
    Tensor x = add(mul(randn(shape, gen), 2.0), 3.0).requires_grad_();
    Tensor w = add(rand({c}, gen), 0.5).requires_grad_(), b = randn({c}, gen).requires_grad_();
    Tensor gy = randn(shape, gen);
    Tensor rm = zeros({c}), rv = zeros({c});
    Tensor y = batch_norm(x, w, b, rm, rv, true, 1.0, 1e-5);
    y.backward(gy);
    auto f64 = [](const Tensor& t) { return t.to(DType::F64).to_vector<double>(); };
    Reference r = reference_bn(f64(x), f64(w), f64(b), f64(gy), n, c, s, 1e-5);
    CHECK(max_rel_err(f64(rm), r.mean, 1e-6) < 1e-6);
    CHECK(max_rel_err(f64(y), r.y, 1.0) < 1e-5);
    CHECK(max_rel_err(f64(x.grad()), r.gx, 1.0) < 1e-5);
    CHECK(max_rel_err(f64(w.grad()), r.gw, 1.0) < 1e-5);
    CHECK(max_rel_err(f64(b.grad()), r.gb, 1.0) < 1e-5);
  }
}

namespace {

// Forward and backward of batch norm (+ fused ReLU) once, every result as raw bytes.
std::vector<std::vector<char>> bn_results(const Tensor& x0, const Tensor& w0, const Tensor& b0, const Tensor& gy,
                                          bool training, bool relu) {
  Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
  Tensor rm = full({x.size(1)}, 0.25, x.dtype()), rv = full({x.size(1)}, 2.0, x.dtype());
  Tensor y = relu ? batch_norm_relu(x, w, b, rm, rv, training, 0.1, 1e-5)
                  : batch_norm(x, w, b, rm, rv, training, 0.1, 1e-5);
  y.backward(gy);
  std::vector<std::vector<char>> out;
  for (const Tensor& t : {y, rm, rv, x.grad(), w.grad(), b.grad()}) {
    const Tensor c = t.contiguous();
    const char* p = static_cast<const char*>(c.raw_data());
    out.emplace_back(p, p + c.numel() * static_cast<int64_t>(c.element_size()));
  }
  return out;
}

}  // namespace

TEST_CASE("batch_norm kernel: the AVX2 and baseline builds of its loops give the same bits", "[nn][bn]") {
  struct RestoreIsa {
    ~RestoreIsa() { cpu::set_max_cpu_isa(cpu::CpuIsa::Avx2); }
  } restore;
  cpu::set_max_cpu_isa(cpu::CpuIsa::Avx2);
  if (cpu::cpu_isa() != cpu::CpuIsa::Avx2) {
    WARN("this CPU has no AVX2 (or DLTOOL_MAX_CPU_ISA caps it): only the baseline build runs here");
    return;
  }
  Generator gen(73);
  // Row lengths with and without an 8-lane tail, a long row, and [N, C] input (s = 1).
  for (const Shape& shape : {Shape{16, 4, 28, 28}, Shape{5, 3, 7, 7}, Shape{3, 2, 13}, Shape{33, 6}}) {
    for (DType dt : {DType::F32, DType::F64}) {
      const int64_t c = shape[1];
      Tensor x = add(mul(randn(shape, gen, dt), 3.0), 5.0), gy = randn(shape, gen, dt);
      Tensor w = add(rand({c}, gen, dt), 0.5), b = randn({c}, gen, dt);
      for (bool training : {true, false})
        for (bool relu : {false, true}) {
          INFO("shape " << shape_str(shape) << " " << dtype_name(dt) << " training " << training << " relu " << relu);
          cpu::set_max_cpu_isa(cpu::CpuIsa::Avx2);
          const auto avx2 = bn_results(x, w, b, gy, training, relu);
          cpu::set_max_cpu_isa(cpu::CpuIsa::Baseline);
          REQUIRE(cpu::cpu_isa() == cpu::CpuIsa::Baseline);
          const auto baseline = bn_results(x, w, b, gy, training, relu);
          REQUIRE(avx2.size() == baseline.size());
          for (size_t k = 0; k < avx2.size(); ++k) {
            INFO("result " << k << " (y, running_mean, running_var, x.grad, w.grad, b.grad)");
            CHECK(avx2[k] == baseline[k]);
          }
        }
    }
  }
}
