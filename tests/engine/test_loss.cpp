// Losses: PyTorch fixtures (forward + input/target gradients, three memory layouts), float64
// gradient checks, the fused cross-entropy against its composition, and argument errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>

#include "engine/ops.h"
#include "engine/tensor/host_reads.h"
#include "tests/support/fixtures.h"
#include "tests/support/gradcheck.h"

using namespace dl;
using dl::test::FixtureCase;

namespace {

constexpr double kRtol = 1e-5, kAtol = 1e-6;

enum class Layout { Contiguous, Strided, Transposed };

struct LaidOut {
  Tensor leaf, view;
};

// The op sees `view` (equal to x): contiguous, every other element of a [..., 2] buffer, or the
// transpose of a transposed copy (>= 2 dims).
LaidOut lay_out(const Tensor& x, Layout layout, bool grad) {
  LaidOut r;
  if (layout == Layout::Contiguous) r.leaf = x.clone().detach();
  if (layout == Layout::Strided) r.leaf = stack({x, zeros_like(x)}, x.dim()).detach();
  if (layout == Layout::Transposed) r.leaf = x.transpose(0, -1).contiguous().detach();
  if (grad) r.leaf.requires_grad_();
  if (layout == Layout::Contiguous) r.view = r.leaf;
  if (layout == Layout::Strided) r.view = r.leaf.select(-1, 0);
  if (layout == Layout::Transposed) r.view = r.leaf.transpose(0, -1);
  return r;
}

Tensor grad_of(const LaidOut& in, Layout layout) {
  Tensor g = in.leaf.grad().defined() ? in.leaf.grad() : zeros_like(in.leaf);
  if (layout == Layout::Strided) return g.select(-1, 0);
  return layout == Layout::Transposed ? g.transpose(0, -1) : g;
}

Tensor opt(const FixtureCase& c, const char* key) { return c.has(key) ? c.t(key) : Tensor(); }

Tensor run_loss(const FixtureCase& c, const Tensor& x, const Tensor& t) {
  const std::string& op = c.attr("op");
  const Reduction r = parse_reduction(c.attr("reduction"));
  if (op == "cross_entropy")
    return cross_entropy(x, t, opt(c, "w"), c.attr_i("ignore_index"), r, c.attr_f("label_smoothing"));
  if (op == "nll_loss") return nll_loss(x, t, opt(c, "w"), c.attr_i("ignore_index"), r);
  if (op == "mse_loss") return mse_loss(x, t, r);
  if (op == "l1_loss") return l1_loss(x, t, r);
  if (op == "smooth_l1_loss") return smooth_l1_loss(x, t, r, c.attr_f("beta"));
  if (op == "binary_cross_entropy") return binary_cross_entropy(x, t, opt(c, "w"), r);
  if (op == "binary_cross_entropy_with_logits")
    return binary_cross_entropy_with_logits(x, t, opt(c, "w"), opt(c, "pw"), r);
  FAIL("unknown op " << op);
  return {};
}

void check_case(const FixtureCase& c, Layout layout) {
  const Tensor& x = c.t("x");
  const Tensor& t = c.t("t");
  if (layout == Layout::Transposed && x.dim() < 2) return;
  INFO("case " << c.name << " layout " << static_cast<int>(layout));
  LaidOut xi = lay_out(x, layout, c.has("gx"));
  // Class-index targets stay contiguous when the logits are transposed (their shapes differ).
  const Layout tl = t.dtype() == DType::I64 && layout == Layout::Transposed ? Layout::Contiguous : layout;
  LaidOut ti = lay_out(t, tl, c.has("gt"));
  Tensor y = run_loss(c, xi.view, ti.view);
  CHECK_CLOSE(y, c.t("y"), kRtol, kAtol);
  if (c.has("gout")) {
    REQUIRE(y.requires_grad());
    y.backward(c.t("gout"));
    if (c.has("gx")) CHECK_CLOSE(grad_of(xi, layout), c.t("gx"), kRtol, kAtol);
    if (c.has("gt")) CHECK_CLOSE(grad_of(ti, tl), c.t("gt"), kRtol, kAtol);
  }
}

Tensor rand64(const Shape& s, Generator& gen) { return randn(s, gen, DType::F64).requires_grad_(); }

}  // namespace

TEST_CASE("parse_reduction accepts none/mean/sum and names them on error", "[loss]") {
  CHECK(parse_reduction("none") == Reduction::None);
  CHECK(parse_reduction("mean") == Reduction::Mean);
  CHECK(parse_reduction("sum") == Reduction::Sum);
  CHECK_THROWS_WITH(parse_reduction("avg"), Catch::Contains("'avg'") && Catch::Contains("'none', 'mean', 'sum'"));
}

TEST_CASE("losses match PyTorch (forward, gradients, layouts)", "[loss][fixtures]") {
  auto cases = dl::test::load_fixtures("loss.txt");
  REQUIRE(cases.size() > 50);
  for (const auto& c : cases)
    for (Layout l : {Layout::Contiguous, Layout::Strided, Layout::Transposed}) check_case(c, l);
}

TEST_CASE("loss gradients pass float64 gradcheck", "[loss][gradcheck]") {
  Generator gen(8);
  Tensor x = rand64({5, 4}, gen);
  Tensor t = from_vector<int64_t>({0, 3, -100, 2, 1}, {5});
  Tensor w = from_vector<double>({0.5, 1.5, 1.0, 2.0}, {4});
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
    for (double ls : {0.0, 0.25}) {
      REQUIRE_GRADCHECK([&](const TensorList& in) { return cross_entropy(in[0], t, w, -100, r, ls); }, TensorList{x});
      REQUIRE_GRADCHECK([&](const TensorList& in) { return cross_entropy(in[0], t, Tensor(), -100, r, ls); },
                        TensorList{x});
    }
    REQUIRE_GRADCHECK([&](const TensorList& in) { return nll_loss(in[0], t, w, -100, r); }, TensorList{x});
  }
  // [N, C, d1, d2] with the class dim in the middle, fed non-contiguous.
  Tensor x4 = rand64({2, 2, 3, 3}, gen);  // permuted to [2, 3, 2, 3] inside
  Tensor t4 = from_vector<int64_t>({0, 1, 2, 2, 1, 0, 1, 1, 2, 0, 0, 1}, {2, 2, 3});
  REQUIRE_GRADCHECK([&](const TensorList& in) {
    return cross_entropy(in[0].permute({0, 2, 1, 3}), t4, Tensor(), -100, Reduction::Mean, 0.1);
  }, TensorList{x4});
  REQUIRE_GRADCHECK([&](const TensorList& in) {
    return nll_loss(in[0].permute({0, 2, 1, 3}), t4, Tensor(), 1, Reduction::None);
  }, TensorList{x4});

  Tensor a = rand64({3, 4}, gen), b = rand64({3, 4}, gen);
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
    REQUIRE_GRADCHECK([r](const TensorList& in) { return mse_loss(in[0], in[1], r); }, (TensorList{a, b}));
    REQUIRE_GRADCHECK([r](const TensorList& in) { return l1_loss(in[0], in[1], r); }, (TensorList{a, b}));
    for (double beta : {1.0, 0.3, 0.0})
      REQUIRE_GRADCHECK(([r, beta](const TensorList& in) { return smooth_l1_loss(in[0], in[1], r, beta); }),
                        (TensorList{a, b}));
  }
  // binary_cross_entropy: probabilities in (0.1, 0.9), soft targets.
  Tensor p, q;
  {
    NoGradGuard ng;
    p = add(mul(rand({3, 4}, gen, DType::F64), 0.8), 0.1);
    q = rand({3, 4}, gen, DType::F64);
  }
  p.requires_grad_();
  q.requires_grad_();
  Tensor w4 = from_vector<double>({0.5, 1.0, 2.0, 1.5}, {4});
  Tensor pw = from_vector<double>({3.0, 0.5, 1.0, 2.0}, {4});
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
    REQUIRE_GRADCHECK([&](const TensorList& in) { return binary_cross_entropy(in[0], in[1], w4, r); },
                      (TensorList{p, q}));
    REQUIRE_GRADCHECK([&](const TensorList& in) { return binary_cross_entropy_with_logits(in[0], in[1], w4, pw, r); },
                      (TensorList{a, q}));
    REQUIRE_GRADCHECK([&](const TensorList& in) {
      return binary_cross_entropy_with_logits(in[0], in[1], Tensor(), Tensor(), r);
    }, (TensorList{a, q}));
  }
}

TEST_CASE("fused cross_entropy equals log_softmax + nll_loss on the training shape", "[loss]") {
  Generator gen(3);
  Tensor x = mul(randn({128, 10}, gen), 3.0).detach().requires_grad_();
  std::vector<int64_t> lv(128);
  for (size_t i = 0; i < lv.size(); ++i) lv[i] = static_cast<int64_t>((i * 7 + 1) % 10);
  Tensor t = from_vector(lv, {128});
  Tensor w = add(rand({10}, gen), 0.5);
  Tensor fused = cross_entropy(x, t, w);
  fused.backward();
  Tensor g_fused = x.grad();
  x.zero_grad();
  Tensor composed = nll_loss(log_softmax(x, 1), t, w);
  composed.backward();
  CHECK(fused.item() == Approx(composed.item()).epsilon(1e-6));
  CHECK_CLOSE(g_fused, x.grad(), 1e-5, 1e-7);
  // f64: agreement to rounding.
  Tensor x64 = x.detach().to(DType::F64);
  CHECK(cross_entropy(x64, t).item() == Approx(nll_loss(log_softmax(x64, 1), t).item()).epsilon(1e-14));
}

TEST_CASE("class-index losses reject invalid targets and arguments", "[loss]") {
  Tensor x = zeros({3, 3});
  Tensor bad = from_vector<int64_t>({0, 5, 1}, {3});
  CHECK_THROWS_AS(cross_entropy(x, bad), std::out_of_range);
  CHECK_THROWS_WITH(cross_entropy(x, bad), Catch::Contains("target 5") && Catch::Contains("[0, 2]"));
  CHECK_THROWS_WITH(nll_loss(x, from_vector<int64_t>({0, -1, 1}, {3})),
                    Catch::Contains("target -1") && Catch::Contains("ignore_index (-100)"));
  // A target equal to ignore_index is fine even outside [0, C).
  CHECK(cross_entropy(x, from_vector<int64_t>({0, 7, 1}, {3}), Tensor(), 7).item() == Approx(std::log(3.0)));
  // 4-d targets are validated too.
  CHECK_THROWS_AS(cross_entropy(zeros({1, 2, 2, 2}), from_vector<int64_t>({0, 1, 2, 0}, {1, 2, 2})), std::out_of_range);
  CHECK_THROWS_WITH(cross_entropy(x, from_vector<float>({0, 1, 2}, {3})), Catch::Contains("int64"));
  CHECK_THROWS_WITH(cross_entropy(x, from_vector<int64_t>({0, 1}, {2})), Catch::Contains("target shape"));
  CHECK_THROWS_WITH(cross_entropy(x, from_vector<int64_t>({0, 1, 2}, {3}), ones({4})),
                    Catch::Contains("all 3 classes"));
  CHECK_THROWS_WITH(cross_entropy(x, from_vector<int64_t>({0, 1, 2}, {3}), Tensor(), -100, Reduction::Mean, 1.5),
                    Catch::Contains("label_smoothing"));
  CHECK_THROWS_WITH(binary_cross_entropy(from_vector<float>({0.5f, 1.5f}, {2}), zeros({2})),
                    Catch::Contains("between 0 and 1"));
  CHECK_THROWS_WITH(binary_cross_entropy(from_vector<float>({0.5f, NAN}, {2}), zeros({2})),
                    Catch::Contains("between 0 and 1"));
  CHECK_THROWS_WITH(binary_cross_entropy(full({2}, 0.5), zeros({1})), Catch::Contains("shape"));
  CHECK_THROWS_WITH(binary_cross_entropy_with_logits(zeros({2, 3}), zeros({3})), Catch::Contains("size"));
  CHECK_THROWS_WITH(smooth_l1_loss(zeros({2}), zeros({2}), Reduction::Mean, -1.0), Catch::Contains("beta"));
}

TEST_CASE("loss edge cases: empty batches and fully ignored batches", "[loss]") {
  // Mean over nothing is NaN (0/0), a sum is 0, like PyTorch.
  CHECK(std::isnan(cross_entropy(zeros({0, 4}), zeros({0}, DType::I64)).item()));
  CHECK(cross_entropy(zeros({0, 4}), zeros({0}, DType::I64), Tensor(), -100, Reduction::Sum).item() == 0.0);
  CHECK(cross_entropy(zeros({0, 4}), zeros({0}, DType::I64), Tensor(), -100, Reduction::None).shape() == Shape{0});
  CHECK(std::isnan(nll_loss(zeros({2, 4}), full({2}, -100, DType::I64)).item()));
  CHECK(nll_loss(zeros({2, 4}), full({2}, -100, DType::I64), Tensor(), -100, Reduction::Sum).item() == 0.0);
  CHECK(mse_loss(zeros({0}), zeros({0}), Reduction::Sum).item() == 0.0);
  CHECK(std::isnan(mse_loss(zeros({0}), zeros({0})).item()));
  CHECK(std::isnan(binary_cross_entropy(zeros({0}), zeros({0})).item()));
  // mse broadcasts like PyTorch (which warns).
  CHECK(mse_loss(ones({2, 3}), zeros({3})).item() == 1.0);
  // Large logits stay finite (log-sum-exp with the max subtracted).
  Tensor big_logits = from_vector<float>({1000.0f, 0.0f, -1000.0f, 0.0f}, {2, 2}).requires_grad_();
  Tensor ce = cross_entropy(big_logits, from_vector<int64_t>({1, 0}, {2}), Tensor(), -100, Reduction::Sum);
  CHECK(ce.item() == Approx(2000.0));
  ce.backward();
  CHECK(big_logits.grad().to_vector<float>() == std::vector<float>{1, -1, -1, 1});
  // Stable BCE-with-logits at large |x|.
  Tensor big = from_vector<float>({100.0f, -100.0f}, {2});
  std::vector<float> l = binary_cross_entropy_with_logits(big, from_vector<float>({0, 1}, {2}), Tensor(), Tensor(),
                                                          Reduction::None).to_vector<float>();
  CHECK(l[0] == Approx(100.0f));
  CHECK(l[1] == Approx(100.0f));
}

TEST_CASE("host reads: a deferred target check throws at the next read, with the op's message", "[loss][host_reads]") {
  Generator g(21);
  Tensor x = randn({4, 3}, g).requires_grad_();
  Tensor bad = from_vector<int64_t>({0, 5, 2, 1}, {4});  // 5 is out of range
  std::string immediate;
  try {
    cross_entropy(x, bad);
  } catch (const std::out_of_range& e) {
    immediate = e.what();
  }
  CHECK_THAT(immediate, Catch::Contains("target 5 at position 1 is out of bounds"));
  REQUIRE(pending_checks() == 0);

  const uint64_t reads = host_read_count();
  Tensor l;
  {
    DeferChecksGuard defer;
    CHECK(checks_deferred());
    l = cross_entropy(x, bad);  // no throw, no read: the bad target counts as ignored
  }
  CHECK_FALSE(checks_deferred());
  CHECK(host_read_count() == reads);
  CHECK(pending_checks() == 1);
  std::string later;
  try {
    l.item();
  } catch (const std::out_of_range& e) {
    later = e.what();
  }
  CHECK(later == immediate);
  CHECK(pending_checks() == 0);
  // What the loss was: the bad position ignored (and its gradient zero).
  Tensor ignored = from_vector<int64_t>({0, -100, 2, 1}, {4});
  CHECK(l.item() == cross_entropy(x, ignored).item());
  l.backward();
  CHECK(x.grad().narrow(0, 1, 1).contiguous().to_vector<float>() == std::vector<float>{0, 0, 0});

  // nll_loss too; valid targets leave nothing to throw; the reads are counted.
  {
    DeferChecksGuard defer;
    l = nll_loss(log_softmax(x, 1), bad, Tensor(), -100, Reduction::Sum);
  }
  CHECK_THROWS_WITH(l.to_vector<float>(), Catch::Contains("nll_loss: target 5 at position 1"));
  {
    DeferChecksGuard defer;
    l = cross_entropy(x, ignored);
  }
  CHECK(pending_checks() == 1);
  const uint64_t before = host_read_count();
  CHECK(std::isfinite(l.item()));
  CHECK(pending_checks() == 0);
  CHECK(host_read_count() == before + 2);  // the item and the checks' one read
}

namespace {

// The message `loss()` throws at once, and checks that under a DeferChecksGuard it throws
// nothing and reads nothing, leaves one pending check, and the next read throws that message.
std::string check_error_deferred(const std::function<Tensor()>& loss) {
  std::string immediate;
  try {
    loss();
  } catch (const std::exception& e) {
    immediate = e.what();
  }
  const uint64_t reads = host_read_count();
  Tensor l;
  {
    DeferChecksGuard defer;
    l = loss();  // no throw, no read
  }
  CHECK(host_read_count() == reads);
  CHECK(pending_checks() == 1);
  std::string later;
  try {
    l.item();
  } catch (const std::exception& e) {
    later = e.what();
  }
  CHECK(later == immediate);
  CHECK(pending_checks() == 0);
  return immediate;
}

// The losses `a` and `b` of `x` have the same value and give x the same gradient, bit for bit.
void check_same_value_and_grad(Tensor x, Tensor a, Tensor b) {
  CHECK(a.item() == b.item());
  x.set_grad(Tensor());
  a.backward();
  const Tensor ga = x.grad().clone();
  x.set_grad(Tensor());
  b.backward();
  CHECK_CLOSE(x.grad(), ga, 0, 0);
}

}  // namespace

TEST_CASE("host reads: binary_cross_entropy's range check waits for the next read when deferred", "[loss][host_reads]") {
  Tensor target = from_vector<float>({0, 1, 1, 0}, {4});
  for (const Tensor& bad : {from_vector<float>({0.2f, 1.5f, 0.5f, -0.25f}, {4}),
                            from_vector<float>({0.2f, std::nanf(""), 0.5f, 0.1f}, {4})})
    CHECK_THAT(check_error_deferred([&] { return binary_cross_entropy(bad, target); }),
               Catch::Contains("all elements of input should be between 0 and 1, got values in ["));
  // Valid input: the same loss deferred or not; the read runs the check and finds nothing.
  Tensor good = from_vector<float>({0.2f, 0.9f, 0.5f, 0.0f}, {4});
  const double direct = binary_cross_entropy(good, target).item();
  Tensor l;
  {
    DeferChecksGuard defer;
    l = binary_cross_entropy(good, target);
  }
  CHECK(pending_checks() == 1);
  CHECK(l.item() == direct);
  CHECK(pending_checks() == 0);
}

TEST_CASE("host reads: multi_margin_loss keeps its targets on the device when checks are deferred", "[loss][host_reads]") {
  Generator g(31);
  Tensor x = randn({4, 5}, g).requires_grad_();
  Tensor w = from_vector<float>({1, 2, 0.5f, 1, 3}, {5});
  Tensor ok = from_vector<int64_t>({0, 4, 2, 2}, {4});
  for (int64_t p : {1, 2}) {
    const uint64_t reads = host_read_count();
    Tensor deferred;
    {
      DeferChecksGuard defer;
      deferred = multi_margin_loss(x, ok, p, 0.7, w);
    }
    CHECK(host_read_count() == reads);  // the targets were not read
    Tensor direct = multi_margin_loss(x, ok, p, 0.7, w);
    check_same_value_and_grad(x, deferred, direct);
  }
  Tensor bad = from_vector<int64_t>({0, 4, 7, 2}, {4});
  CHECK_THAT(check_error_deferred([&] { return multi_margin_loss(x, bad); }),
             Catch::Contains("target 7 at position 2 is out of range"));
}

TEST_CASE("host reads: multilabel_margin_loss reads its targets back only to check them", "[loss][host_reads]") {
  Generator g(37);
  Tensor x = randn({3, 5}, g).requires_grad_();
  Tensor ok = from_vector<int64_t>({3, 0, -1, 9, 9, 1, 1, 4, -1, 0, -1, 2, 2, 2, 2}, {3, 5});
  const uint64_t reads = host_read_count();
  Tensor deferred;
  {
    DeferChecksGuard defer;
    deferred = multilabel_margin_loss(x, ok);
  }
  CHECK(host_read_count() == reads);  // nothing read: the verdict waits as a pending check
  CHECK(pending_checks() == 1);
  run_deferred_checks();  // one read, no error
  CHECK(pending_checks() == 0);
  Tensor direct = multilabel_margin_loss(x, ok);  // one read: its verdict
  CHECK(host_read_count() == reads + 2);
  check_same_value_and_grad(x, deferred, direct);
  // The third row has no target (its first entry is -1): loss 0.
  CHECK(multilabel_margin_loss(x, ok, Reduction::None).select(0, 2).item() == 0.0);

  Tensor bad = from_vector<int64_t>({3, 0, -1, 9, 9, 1, 5, 4, -1, 0, -1, 2, 2, 2, 2}, {3, 5});
  CHECK_THAT(check_error_deferred([&] { return multilabel_margin_loss(x, bad); }),
             Catch::Contains("target 5 at position 6 is out of range"));

  // f16 / bf16 inputs compute in f32 and round once (kernels/f32_compute.h).
  for (DType half : {DType::F16, DType::BF16}) {
    Tensor xh = x.detach().to(half);
    Tensor lh = multilabel_margin_loss(xh, ok, Reduction::None);
    CHECK(lh.dtype() == half);
    Tensor l32 = multilabel_margin_loss(xh.to(DType::F32), ok, Reduction::None);
    CHECK_CLOSE(lh.to(DType::F32), l32.to(half).to(DType::F32), 0, 0);
  }
}
