// Data-parallel training (engine/dist/reducer.h, ddp.h) on every rank of the job: each rank
// takes rows rank, rank + W, ... of one batch; after the reducer the averaged gradient equals
// the gradient of the whole batch computed on one process. Passes for any world size (1, 2, 3).
#include <catch2/catch.hpp>

#include <memory>
#include <vector>

#include "engine/dist/ddp.h"
#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "engine/optim/optim.h"
#include "engine/train/step.h"
#include "tests/dist/data_parallel_test.h"

using namespace dl;
using test::check_close;
using test::shard_rows;

namespace {

int rank() { return test::test_group().rank(); }
int world() { return test::test_group().world_size(); }

// Parameters (registration order, float64): 0: [16, 6], 1: [16], 2: [8, 16], 3: [8], 4: [3, 8], 5: [3].
std::shared_ptr<nn::Sequential> mlp(uint64_t seed) {
  Generator g(seed);
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(std::make_shared<nn::Linear>(6, 16, true, g));
  net->push_back(std::make_shared<nn::Tanh>());
  net->push_back(std::make_shared<nn::Linear>(16, 8, true, g));
  net->push_back(std::make_shared<nn::Tanh>());
  net->push_back(std::make_shared<nn::Linear>(8, 3, true, g));
  net->to(DType::F64);
  return net;
}

// float32 conv net on [N, 2, 6, 6].
std::shared_ptr<nn::Sequential> conv_net(uint64_t seed) {
  Generator g(seed);
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(std::make_shared<nn::Conv2d>(2, 4, 3, 1, 1, 1, 1, true, g));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::Conv2d>(4, 4, 3, 1, 0, 1, 1, true, g));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::Flatten>());
  net->push_back(std::make_shared<nn::Linear>(4 * 4 * 4, 3, true, g));
  return net;
}

Tensor labels(int64_t n) {
  std::vector<int64_t> y;
  for (int64_t i = 0; i < n; ++i) y.push_back((i * 7 + 1) % 3);
  return from_vector<int64_t>(y, {n});
}

void check_same_values(nn::Module& a, nn::Module& b) {
  const nn::StateDict sa = a.state_dict(), sb = b.state_dict();
  REQUIRE(sa.size() == sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    INFO(sa[i].first);
    CHECK(test::to_f64(sa[i].second) == test::to_f64(sb[i].second));
  }
}

// Gradients of `net` after backward of the mean cross entropy over (x, y): the reference.
std::vector<Tensor> full_batch_grads(nn::Module& net, const Tensor& x, const Tensor& y) {
  cross_entropy(net.forward(x), y).backward();
  std::vector<Tensor> g;
  for (const Tensor& p : net.parameters()) g.push_back(p.grad());
  return g;
}

}  // namespace

TEST_CASE("ddp: broadcast_parameters gives every rank rank 0's initial parameters and buffers", "[dist][ddp]") {
  auto mine = mlp(100 + rank()), reference = mlp(100);
  auto bn = std::make_shared<nn::BatchNorm1d>(3);
  mine->push_back(bn);
  reference->push_back(std::make_shared<nn::BatchNorm1d>(3));
  fill_(bn->running_mean, static_cast<double>(rank()));  // a buffer that differs too
  dist::broadcast_parameters(test::test_group(), *mine, 0);
  check_same_values(*mine, *reference);
  CHECK_THROWS_AS(dist::broadcast_parameters(test::test_group(), *mine, world()), std::invalid_argument);
}

TEST_CASE("ddp: the averaged gradient of the shards equals the whole batch's (MLP, 3 buckets)", "[dist][ddp]") {
  Generator g(7);
  Tensor x = randn({12, 6}, g, DType::F64), y = labels(12);
  auto net = mlp(100 + rank()), reference = mlp(100);
  dist::broadcast_parameters(test::test_group(), *net, 0);
  const std::vector<Tensor> expected = full_batch_grads(*reference, x, y);

  // Gradient bytes, reverse order: 5: 24, 4: 192, 3: 64 -> 280 >= 256 (first bucket);
  // 2: 1024 >= 1024 (the cap); 1: 128 + 0: 768 = 896, the rest.
  dist::Reducer reducer(net->parameters(), test::test_group_ptr(),
                        {.bucket_cap_mb = 1024.0 / (1 << 20), .first_bucket_mb = 256.0 / (1 << 20)});
  CHECK(reducer.bucket_params() == std::vector<std::vector<size_t>>{{5, 4, 3}, {2}, {1, 0}});
  for (int iteration = 0; iteration < 2; ++iteration) {  // the reducer is reusable
    INFO("iteration " << iteration);
    net->zero_grad();
    reducer.prepare_for_backward(true);
    cross_entropy(net->forward(shard_rows(x)), shard_rows(y)).backward();
    // Every bucket was launched by the hooks during backward, in bucket order.
    CHECK(reducer.buckets_launched() == (world() > 1 ? reducer.num_buckets() : 0));
    reducer.finalize();
    CHECK(reducer.buckets_launched() == 0);
    const std::vector<Tensor> ps = net->parameters();
    for (size_t i = 0; i < ps.size(); ++i) {
      INFO("parameter " << i);
      check_close(ps[i].grad(), expected[i], 1e-6);
    }
  }
  CHECK_THROWS_AS(dist::Reducer(net->parameters(), nullptr), std::invalid_argument);
}

TEST_CASE("ddp: a float32 conv net with >= 3 buckets", "[dist][ddp]") {
  Generator g(8);
  Tensor x = randn({12, 2, 6, 6}, g), y = labels(12);
  auto net = conv_net(200 + rank()), reference = conv_net(200);
  dist::broadcast_parameters(test::test_group(), *net, 0);
  const std::vector<Tensor> expected = full_batch_grads(*reference, x, y);
  dist::Reducer reducer(net->parameters(), test::test_group_ptr(),
                        {.bucket_cap_mb = 512.0 / (1 << 20), .first_bucket_mb = 64.0 / (1 << 20)});
  CHECK(reducer.bucket_params() == std::vector<std::vector<size_t>>{{5, 4}, {3, 2}, {1, 0}});
  reducer.prepare_for_backward(true);
  cross_entropy(net->forward(shard_rows(x)), shard_rows(y)).backward();
  reducer.finalize();
  const std::vector<Tensor> ps = net->parameters();
  for (size_t i = 0; i < ps.size(); ++i) {
    INFO("parameter " << i);
    // float32 sums of 6 vs 12 rows: an element that cancels to near 0 keeps an error of ~1e-7 of
    // the gradient's scale (4.7e-9 at a scale of 0.04 was seen in the CUDA-enabled build), so
    // relative error is measured against at least a tenth of the largest element.
    check_close(ps[i].grad(), expected[i], 1e-5, test::max_abs(expected[i]) / 10);
  }
}

TEST_CASE("ddp: with a TrainStep, 2 accumulated micro-batches (no_sync on the first) equal the whole batch",
          "[dist][ddp][step]") {
  Generator g(9);
  Tensor x = randn({12, 6}, g, DType::F64), y = labels(12);
  auto net = mlp(300 + rank()), reference = mlp(300);
  std::vector<Tensor> expected = full_batch_grads(*reference, x, y);

  auto opt = optim::make_optimizer("sgd", net->named_parameters(), {{"lr", 0.1}});
  train::TrainStep step(*opt, {.accumulate_steps = 2});
  std::shared_ptr<dist::Reducer> reducer;
  std::vector<size_t> launched_before_backward, launched_before_update;
  step.add_before_backward([&](bool) { launched_before_backward.push_back(reducer->buckets_launched()); });
  step.add_before_update([&] { launched_before_update.push_back(reducer->buckets_launched()); });
  reducer = dist::attach_data_parallel(*net, step, test::test_group_ptr(),
                                       {.reducer = {.bucket_cap_mb = 1024.0 / (1 << 20), .first_bucket_mb = 256.0 / (1 << 20)}});
  std::vector<Tensor> averaged;
  step.add_before_update([&] {
    for (const Tensor& p : net->parameters()) averaged.push_back(p.grad().clone());
  });
  // This rank's shard, in two micro-batches of equal size.
  const Tensor xs = shard_rows(x), ys = shard_rows(y);
  const int64_t half = xs.size(0) / 2;
  for (int64_t m = 0; m < 2; ++m) {
    auto r = step.run([&] { return cross_entropy(net->forward(xs.narrow(0, m * half, half)), ys.narrow(0, m * half, half)); });
    CHECK(r.updated == (m == 1));
  }
  CHECK(launched_before_backward == std::vector<size_t>{0, 0});  // nothing all-reduced after the first
  CHECK(launched_before_update == std::vector<size_t>{world() > 1 ? reducer->num_buckets() : 0});
  REQUIRE(averaged.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("parameter " << i);
    check_close(averaged[i], expected[i], 1e-6);
  }
  // The update itself: every rank holds the same parameters, reference - lr * gradient.
  {
    NoGradGuard ng;
    for (const Tensor& p : reference->parameters()) {
      Tensor t = p;
      add_(t, p.grad(), -0.1);
    }
  }
  const std::vector<Tensor> ps = net->parameters(), rs = reference->parameters();
  for (size_t i = 0; i < ps.size(); ++i) check_close(ps[i], rs[i], 1e-9);
}

TEST_CASE("ddp: a parameter no rank uses keeps no gradient, one only rank 0 uses gets the average everywhere",
          "[dist][ddp]") {
  Generator g(10);
  Tensor x = randn({12, 6}, g, DType::F64), y = labels(12);
  auto net = mlp(400), reference = mlp(400);
  Tensor only_rank0 = zeros({5}, DType::F64).requires_grad_(), never = zeros({7}, DType::F64).requires_grad_();
  std::vector<Tensor> params = net->parameters();
  params.insert(params.begin() + 2, only_rank0);  // in the middle: its bucket and the later ones wait for finalize
  params.push_back(never);
  dist::Reducer reducer(params, test::test_group_ptr(),
                        {.bucket_cap_mb = 1024.0 / (1 << 20), .first_bucket_mb = 256.0 / (1 << 20)});
  const std::vector<Tensor> expected = full_batch_grads(*reference, x, y);
  reducer.prepare_for_backward(true);
  Tensor loss = cross_entropy(net->forward(shard_rows(x)), shard_rows(y));
  if (rank() == 0) loss = add(loss, mul(only_rank0.sum(), 3.0));
  loss.backward();
  reducer.finalize();
  CHECK_FALSE(never.grad().defined());
  REQUIRE(only_rank0.grad().defined());
  CHECK(test::to_f64(only_rank0.grad()) == std::vector<double>(5, 3.0 / world()));
  const std::vector<Tensor> ps = net->parameters();
  for (size_t i = 0; i < ps.size(); ++i) {
    INFO("parameter " << i);
    check_close(ps[i].grad(), expected[i], 1e-6);
  }
}

TEST_CASE("ddp: misuse is reported", "[dist][ddp]") {
  auto net = mlp(500);
  Tensor x = zeros({2, 6}, DType::F64), y = labels(2);
  dist::Reducer reducer(net->parameters(), test::test_group_ptr());
  if (world() > 1) {
    reducer.prepare_for_backward(true);
    cross_entropy(net->forward(x), y).backward();
    // A second backward in the same step: the buckets are already being all-reduced.
    CHECK_THROWS_AS(cross_entropy(net->forward(x), y).backward(), std::logic_error);
    CHECK_THROWS_WITH(reducer.prepare_for_backward(true), Catch::Contains("finalize()"));
    reducer.finalize();
  }
  reducer.prepare_for_backward(true);  // usable again
  reducer.finalize();
}
