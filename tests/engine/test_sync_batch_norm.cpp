// Synchronised batch norm (engine/ops/sync_batch_norm.h, nn::convert_sync_batchnorm) and the
// data-parallel reducer's bucket assignment (engine/dist/reducer.h) in a world of one; the
// multi-rank checks are in tests/dist (test_sync_bn.cpp, test_ddp.cpp).
#include <catch2/catch.hpp>

#include <vector>

#include "engine/dist/reducer.h"
#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "engine/ops/sync_batch_norm.h"
#include "tests/support/gradcheck.h"

using namespace dl;

namespace {

std::vector<double> values(const Tensor& t) { return t.detach().to(DType::F64).contiguous().to_vector<double>(); }

void check_close(const Tensor& a, const Tensor& b, double tol) {
  REQUIRE(a.defined() == b.defined());
  if (!a.defined()) return;
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> x = values(a), y = values(b);
  for (size_t i = 0; i < x.size(); ++i) CHECK(x[i] == Approx(y[i]).margin(tol).epsilon(tol));
}

}  // namespace

TEST_CASE("sync_batch_norm over one rank equals batch_norm in training mode", "[nn][bn][sync_bn]") {
  Generator gen(17);
  auto pg = dist::single_process_group();
  for (const Shape& shape : {Shape{6, 3, 4, 5}, Shape{5, 4}, Shape{3, 2, 7}}) {
    for (bool relu : {false, true}) {
      INFO(shape_str(shape) << " relu " << relu);
      const int64_t c = shape[1];
      Tensor x = add(mul(randn(shape, gen), 2.0), 0.7), gy = randn(shape, gen);
      Tensor w = randn({c}, gen), b = randn({c}, gen);
      auto run = [&](bool sync) {
        Tensor xl = x.clone().requires_grad_(), wl = w.clone().requires_grad_(), bl = b.clone().requires_grad_();
        Tensor m = zeros({c}), v = ones({c});
        Tensor y = sync ? sync_batch_norm(xl, wl, bl, m, v, 0.1, 1e-5, pg, relu)
                        : (relu ? batch_norm_relu : batch_norm)(xl, wl, bl, m, v, true, 0.1, 1e-5);
        y.backward(gy);
        return TensorList{y, xl.grad(), wl.grad(), bl.grad(), m, v};
      };
      TensorList s = run(true), p = run(false);
      for (size_t i = 0; i < s.size(); ++i) {
        INFO("output " << i << " (y, gx, gw, gb, running_mean, running_var)");
        check_close(s[i], p[i], 1e-5);
      }
    }
  }
}

TEST_CASE("sync_batch_norm gradcheck in f64", "[nn][bn][sync_bn][gradcheck]") {
  Generator gen(18);
  auto pg = dist::single_process_group();
  Tensor x = randn({4, 3, 2, 3}, gen, DType::F64).requires_grad_();
  Tensor w = add(rand({3}, gen, DType::F64), 0.5).detach().requires_grad_();
  Tensor b = randn({3}, gen, DType::F64).requires_grad_();
  REQUIRE_GRADCHECK(([=](const TensorList& t) { return sync_batch_norm(t[0], t[1], t[2], Tensor(), Tensor(), 0.1, 1e-5, pg); }),
                    (TensorList{x, w, b}));
  // Without affine parameters: only the input's gradient.
  REQUIRE_GRADCHECK(([=](const TensorList& t) { return sync_batch_norm(t[0], Tensor(), Tensor(), Tensor(), Tensor(), 0.1, 1e-5, pg); }),
                    (TensorList{x}));
}

TEST_CASE("sync_batch_norm rejects bad input with batch_norm's messages", "[nn][bn][sync_bn]") {
  auto pg = dist::single_process_group();
  Tensor m = zeros({3}), v = ones({3});
  CHECK_THROWS_WITH(sync_batch_norm(zeros({1, 3}), Tensor(), Tensor(), m, v, 0.1, 1e-5, pg),
                    Catch::Contains("expected more than 1 value per channel"));
  CHECK_THROWS_WITH(sync_batch_norm(zeros({4, 3}), ones({2}), Tensor(), m, v, 0.1, 1e-5, pg),
                    Catch::Contains("sync_batch_norm: weight [2] does not match 3 channels"));
  CHECK_THROWS_WITH(sync_batch_norm(zeros({4, 3}), Tensor(), Tensor(), m, v, 0.1, 1e-5, nullptr),
                    Catch::Contains("process group is null"));
}

TEST_CASE("convert_sync_batchnorm: a world of one and eval mode are plain batch norm, names unchanged",
          "[nn][bn][sync_bn]") {
  Generator gen(19);
  auto make = [] {
    Generator g(7);
    auto net = std::make_shared<nn::Sequential>();
    net->push_back(std::make_shared<nn::Conv2d>(2, 4, 3, 1, 1, 1, 1, true, g));
    net->push_back(std::make_shared<nn::BatchNorm2d>(4));
    net->push_back(std::make_shared<nn::ReLU>());
    net->push_back(std::make_shared<nn::Flatten>());
    net->push_back(std::make_shared<nn::BatchNorm1d>(4 * 16));
    return net;
  };
  auto plain = make(), synced = make();
  CHECK(nn::convert_sync_batchnorm(*synced, dist::single_process_group()) == 2);
  std::vector<std::string> keys_plain, keys_synced;
  for (auto& [k, t] : plain->state_dict()) keys_plain.push_back(k);
  for (auto& [k, t] : synced->state_dict()) keys_synced.push_back(k);
  CHECK(keys_plain == keys_synced);
  Tensor x = randn({5, 2, 4, 4}, gen);
  for (bool training : {true, false}) {
    plain->train(training);
    synced->train(training);
    Tensor y1 = plain->forward(x), y2 = synced->forward(x);
    CHECK(values(y1) == values(y2));
  }
  const nn::StateDict synced_sd = synced->state_dict();
  for (auto& [k, t] : plain->state_dict()) CHECK(values(t) == values(*nn::find_tensor(synced_sd, k)));
}

TEST_CASE("reducer: buckets in reverse parameter order, a small first bucket, then the cap", "[dist][reducer]") {
  // Gradient bytes, in registration order: 0: 400 KiB, 1: 400 KiB, 2: 800 KiB, 3: 40 B, 4: 1.2 MiB,
  // 5: 400 KiB. Reverse order with a 1 MiB first bucket and a 2 MiB cap:
  //   5 + 4 = 1.6 MiB >= 1 MiB -> [5, 4]; 3 + 2 + 1 = 1.2 MiB, + 0 = 1.6 MiB < 2 MiB -> [3, 2, 1, 0]
  std::vector<int64_t> sizes{102400, 102400, 204800, 10, 307200, 102400};
  std::vector<Tensor> params;
  for (int64_t n : sizes) params.push_back(zeros({n}).requires_grad_());
  dist::Reducer r(params, dist::single_process_group(), {.bucket_cap_mb = 2, .first_bucket_mb = 1});
  CHECK(r.bucket_params() == std::vector<std::vector<size_t>>{{5, 4}, {3, 2, 1, 0}});
  dist::Reducer small(params, dist::single_process_group(), {.bucket_cap_mb = 0.5, .first_bucket_mb = 0.25});
  CHECK(small.bucket_params() == std::vector<std::vector<size_t>>{{5}, {4}, {3, 2}, {1, 0}});
  // float64 parameters go to buckets of their own; a frozen parameter to none.
  params.push_back(zeros({4}, DType::F64).requires_grad_());
  params.push_back(zeros({4}));
  dist::Reducer mixed(params, dist::single_process_group(), {.bucket_cap_mb = 2, .first_bucket_mb = 1});
  CHECK(mixed.params().size() == 7);
  CHECK(mixed.bucket_params() == std::vector<std::vector<size_t>>{{6}, {5, 4}, {3, 2, 1, 0}});
  CHECK_THROWS_WITH(dist::Reducer(params, dist::single_process_group(), {.bucket_cap_mb = 0}),
                    Catch::Contains("bucket_cap_mb"));
}
