// matmul (every torch.matmul form), mm and linear against PyTorch fixtures
// (tests/fixtures/linalg.txt), f64 gradient checks, and f32 GEMM on the sizes where oneDNN's
// sgemm takes different paths (1x1, odd sizes, gemv-like, large) against a naive f64 loop.
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <set>

#include "engine/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/gradcheck.h"

using namespace dl;
using dl::test::FixtureCase;

namespace dl::test {
// Defined in test_elementwise.cpp.
using OpFn = std::function<Tensor(const TensorList& inputs, const FixtureCase& c)>;
using OpTable = std::map<std::string, OpFn>;
int run_op_fixtures(const std::string& file, const OpTable& ops, double rtol, double atol,
                    const std::set<std::string>& only);
}  // namespace dl::test

namespace {

const dl::test::OpTable& linalg_ops() {
  static const dl::test::OpTable ops = {
      {"matmul", [](const TensorList& x, const FixtureCase&) { return matmul(x[0], x[1]); }},
      {"mm", [](const TensorList& x, const FixtureCase&) { return mm(x[0], x[1]); }},
      {"linear", [](const TensorList& x, const FixtureCase&) {
         return linear(x[0], x[1], x.size() > 2 ? x[2] : Tensor());
       }},
  };
  return ops;
}

// Sums of up to 13 products in f32: a little looser absolute tolerance than elementwise ops.
constexpr double kRtol = 1e-5, kAtol = 1e-5;

// Naive f64 reference: a [M, K] @ b [K, N] (any layout; values read through to_vector).
Tensor reference_mm(const Tensor& a, const Tensor& b) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  std::vector<double> A = a.to_vector<double>(), B = b.to_vector<double>(), C(M * N, 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t p = 0; p < K; ++p) {
      const double av = A[i * K + p];
      for (int64_t j = 0; j < N; ++j) C[i * N + j] += av * B[p * N + j];
    }
  return from_vector(C, {M, N});
}

// f32 GEMM vs the f64 reference: rtol 1e-4, plus an absolute floor scaled by the typical size
// of a product sum (sqrt(K) for unit normals) for entries that cancel to near zero.
void check_gemm(const Tensor& got, const Tensor& ref, int64_t K) {
  CHECK(got.dtype() == DType::F32);
  CHECK_CLOSE(got.to(DType::F64), ref, 1e-4, 1e-5 * std::sqrt(static_cast<double>(std::max<int64_t>(K, 1))));
}

}  // namespace

TEST_CASE("matmul/mm/linear match PyTorch in every form", "[linalg][fixtures]") {
  int n = dl::test::run_op_fixtures("linalg.txt", linalg_ops(), kRtol, kAtol, {});
  CHECK(n == static_cast<int>(dl::test::load_fixtures("linalg.txt").size()));
  CHECK(n >= 37);
}

TEST_CASE("f32 GEMM matches an f64 reference across oneDNN code paths", "[linalg][gemm]") {
  Generator gen(42);
  struct Size { int64_t m, k, n; };
  const Size sizes[] = {{1, 1, 1}, {7, 13, 5}, {1, 64, 33}, {33, 64, 1}, {1, 300, 1},
                        {100, 3, 1000}, {64, 1000, 10}, {17, 257, 129}, {128, 784, 512}};
  for (const Size& s : sizes) {
    INFO("m=" << s.m << " k=" << s.k << " n=" << s.n);
    Tensor a = randn({s.m, s.k}, gen), b = randn({s.k, s.n}, gen);
    Tensor at = randn({s.k, s.m}, gen), bt = randn({s.n, s.k}, gen);  // used as .t() views
    check_gemm(mm(a, b), reference_mm(a, b), s.k);
    check_gemm(matmul(at.t(), b), reference_mm(at.t(), b), s.k);   // transposed A, no copy
    check_gemm(matmul(a, bt.t()), reference_mm(a, bt.t()), s.k);   // transposed B, no copy
    check_gemm(mm(at.t(), bt.t()), reference_mm(at.t(), bt.t()), s.k);
    Tensor bias = randn({s.n}, gen);
    Tensor ref_lin = add(reference_mm(a, bt.t()), bias.to(DType::F64));
    check_gemm(linear(a, bt, bias), ref_lin, s.k);
    check_gemm(linear(a, bt), reference_mm(a, bt.t()), s.k);
  }
  // A row-sliced operand whose leading dimension exceeds its width (lda > K).
  Tensor wide = randn({40, 50}, gen);
  Tensor a = wide.slice(1, 3, 33);  // [40, 30], stride 50
  Tensor b = randn({30, 20}, gen);
  check_gemm(mm(a, b), reference_mm(a, b), 30);
  check_gemm(mm(b.t(), a.t()), reference_mm(b.t(), a.t()), 40);
  // Batched with broadcast batch dims, against per-batch references.
  Tensor x = randn({3, 1, 9, 31}, gen), y = randn({4, 31, 6}, gen);
  Tensor out = matmul(x, y);
  REQUIRE(out.shape() == Shape{3, 4, 9, 6});
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j)
      check_gemm(out.select(0, i).select(0, j), reference_mm(x.select(0, i).select(0, 0), y.select(0, j)), 31);
}

TEST_CASE("the f64 GEMM path matches the naive reference", "[linalg][gemm]") {
  Generator gen(43);
  Tensor a = randn({9, 21}, gen, DType::F64), bt = randn({11, 21}, gen, DType::F64);
  CHECK_CLOSE(mm(a, bt.t()), reference_mm(a, bt.t()).to(DType::F64), 1e-12, 1e-12);
  Tensor bias = randn({11}, gen, DType::F64);
  CHECK_CLOSE(linear(a, bt, bias), add(reference_mm(a, bt.t()).to(DType::F64), bias), 1e-12, 1e-12);
}

TEST_CASE("matmul/mm/linear pass gradcheck in every form", "[linalg][gradcheck]") {
  Generator gen(44);
  auto r = [&](const Shape& s) { return randn(s, gen, DType::F64).requires_grad_(); };
  using L = const TensorList&;
  auto mmf = [](L x) { return matmul(x[0], x[1]); };
  REQUIRE_GRADCHECK(mmf, (TensorList{r({5}), r({5})}));
  REQUIRE_GRADCHECK(mmf, (TensorList{r({4}), r({4, 3})}));
  REQUIRE_GRADCHECK(mmf, (TensorList{r({3, 4}), r({4})}));
  REQUIRE_GRADCHECK(mmf, (TensorList{r({3, 4}), r({4, 2})}));
  REQUIRE_GRADCHECK(mmf, (TensorList{r({2, 3, 4}), r({4, 2})}));
  REQUIRE_GRADCHECK(mmf, (TensorList{r({3, 4}), r({2, 4, 2})}));
  REQUIRE_GRADCHECK(mmf, (TensorList{r({4}), r({2, 4, 3})}));
  REQUIRE_GRADCHECK(mmf, (TensorList{r({2, 3, 4}), r({4})}));
  REQUIRE_GRADCHECK(mmf, (TensorList{r({2, 3, 4}), r({2, 4, 2})}));
  REQUIRE_GRADCHECK(mmf, (TensorList{r({2, 1, 3, 4}), r({3, 4, 2})}));  // broadcast batch
  REQUIRE_GRADCHECK(mmf, (TensorList{r({1, 3, 4}), r({2, 4, 2})}));
  REQUIRE_GRADCHECK([](L x) { return matmul(x[0].t(), x[1].transpose(-1, -2)); },
                    (TensorList{r({4, 3}), r({2, 5, 4})}));
  REQUIRE_GRADCHECK([](L x) { return mm(x[0], x[1].t()); }, (TensorList{r({3, 4}), r({5, 4})}));
  REQUIRE_GRADCHECK([](L x) { return linear(x[0], x[1], x[2]); }, (TensorList{r({5, 4}), r({3, 4}), r({3})}));
  REQUIRE_GRADCHECK([](L x) { return linear(x[0], x[1]); }, (TensorList{r({2, 5, 4}), r({3, 4})}));
  REQUIRE_GRADCHECK([](L x) { return linear(x[0], x[1], x[2]); }, (TensorList{r({2, 3, 4}), r({3, 4}), r({3})}));
  REQUIRE_GRADCHECK([](L x) { return linear(x[0], x[1], x[2]); }, (TensorList{r({4}), r({2, 4}), r({2})}));
  REQUIRE_GRADCHECK([](L x) { return linear(x[0].t(), x[1], x[2]); }, (TensorList{r({4, 5}), r({3, 4}), r({3})}));
  // Only some inputs require grad.
  Tensor w = randn({3, 4}, gen, DType::F64);
  REQUIRE_GRADCHECK([w](L x) { return linear(x[0], w, x[1]); }, (TensorList{r({5, 4}), r({3})}));
}

TEST_CASE("matmul/linear on empty and batch-of-1 inputs", "[linalg]") {
  Tensor x = zeros({0, 4}).requires_grad_();
  Tensor w = ones({3, 4}).requires_grad_();
  Tensor b = ones({3}).requires_grad_();
  Tensor y = linear(x, w, b);
  CHECK(y.shape() == Shape{0, 3});
  y.sum().backward();
  CHECK(w.grad().to_vector<float>() == std::vector<float>(12, 0.0f));
  CHECK(b.grad().to_vector<float>() == std::vector<float>(3, 0.0f));
  // K = 0: the product is all zeros (and overwrites whatever the output buffer held).
  Tensor z = mm(zeros({3, 0}), zeros({0, 4}));
  CHECK(z.to_vector<float>() == std::vector<float>(12, 0.0f));
  CHECK(mm(zeros({3, 0}, DType::F64), zeros({0, 2}, DType::F64)).to_vector<double>() ==
        std::vector<double>(6, 0.0));
  CHECK(matmul(zeros({2, 0, 3}), zeros({3, 5})).shape() == Shape{2, 0, 5});
}

TEST_CASE("matmul/mm/linear reject bad shapes and dtypes with clear errors", "[linalg]") {
  CHECK_THROWS_WITH(mm(zeros({2, 3}), zeros({4, 2})), Catch::Contains("[2, 3] and [4, 2] cannot be multiplied"));
  CHECK_THROWS_WITH(matmul(zeros({2, 2, 3}), zeros({2, 4, 2})), Catch::Contains("cannot be multiplied"));
  CHECK_THROWS_WITH(matmul(zeros({2, 3}), zeros({4})), Catch::Contains("cannot be multiplied"));
  CHECK_THROWS_WITH(matmul(zeros({3, 2, 3}), zeros({2, 3, 2})), Catch::Contains("cannot be broadcast"));
  CHECK_THROWS_WITH(matmul(scalar_tensor(1.0), zeros({2})), Catch::Contains("at least 1 dim"));
  CHECK_THROWS_WITH(mm(zeros({2, 3}), zeros({3, 2}, DType::F64)), Catch::Contains("dtype mismatch"));
  CHECK_THROWS_WITH(linear(zeros({5, 4}), zeros({3, 5})), Catch::Contains("does not match weight"));
  CHECK_THROWS_WITH(linear(zeros({5, 4}), zeros({3, 4}), zeros({4})), Catch::Contains("bias [4]"));
}
