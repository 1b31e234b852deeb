// SyncBatchNorm (engine/ops/sync_batch_norm.h, nn::convert_sync_batchnorm) on every rank of
// the job: each rank normalises rows rank, rank + W, ... of one batch with the statistics of the
// whole batch, so outputs, running statistics and gradients equal BatchNorm2d on the whole
// batch on one process. Passes for any world size (1, 2, 3).
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <vector>

#include "engine/dist/ddp.h"
#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "tests/dist/data_parallel_test.h"

using namespace dl;
using test::check_close;
using test::shard_rows;

namespace {

std::shared_ptr<nn::BatchNorm2d> bn_with(const Tensor& w, const Tensor& b) {
  auto bn = std::make_shared<nn::BatchNorm2d>(3);
  bn->weight.detach().copy_(w);
  bn->bias.detach().copy_(b);
  return bn;
}

}  // namespace

TEST_CASE("sync batch norm: the shards' outputs, running statistics and gradients equal the whole batch's",
          "[dist][sync_bn]") {
  Generator g(21);
  Tensor x = add(mul(randn({12, 3, 4, 5}, g), 1.5), 0.3), gy = randn({12, 3, 4, 5}, g);
  Tensor w = randn({3}, g), b = randn({3}, g);
  for (bool relu : {false, true}) {
    INFO("fused relu " << relu);
    auto full = bn_with(w, b), mine = bn_with(w, b);
    CHECK(nn::convert_sync_batchnorm(*mine, test::test_group_ptr()) == 1);
    for (int step = 0; step < 2; ++step) {  // twice: the running statistics' update from non-initial values
      INFO("step " << step);
      full->zero_grad();
      mine->zero_grad();
      Tensor xf = x.clone().requires_grad_(), xm = shard_rows(x).requires_grad_();
      Tensor yf = relu ? full->forward_relu(xf) : full->forward(xf);
      Tensor ym = relu ? mine->forward_relu(xm) : mine->forward(xm);
      check_close(ym, shard_rows(yf), 1e-5);
      // Loss sum(gy * y) over the whole batch: each rank's part is its rows' sum.
      yf.backward(gy);
      ym.backward(shard_rows(gy));
      check_close(xm.grad(), shard_rows(xf.grad()), 1e-5);
      // weight and bias get this rank's part; the sum over ranks is the whole batch's.
      Tensor gw = mine->weight.grad().clone(), gb = mine->bias.grad().clone();
      test::test_group().allreduce(gw);
      test::test_group().allreduce(gb);
      check_close(gw, full->weight.grad(), 1e-5);
      check_close(gb, full->bias.grad(), 1e-5);
      check_close(mine->running_mean, full->running_mean, 1e-5);
      check_close(mine->running_var, full->running_var, 1e-5);
      CHECK(mine->num_batches_tracked.item() == full->num_batches_tracked.item());
    }
    // Eval mode uses the (equal) running statistics, no communication.
    full->eval();
    mine->eval();
    check_close(mine->forward(shard_rows(x)), shard_rows(full->forward(x)), 1e-5);
  }
}

TEST_CASE("sync batch norm inside data-parallel training equals BatchNorm2d on the whole batch", "[dist][sync_bn][ddp]") {
  // SyncBatchNorm's backward all-reduces while the reducer's buckets are in flight: every rank
  // issues both in the same order.
  auto make = [](uint64_t seed) {
    Generator g(seed);
    auto net = std::make_shared<nn::Sequential>();
    net->push_back(std::make_shared<nn::Conv2d>(2, 3, 3, 1, 1, 1, 1, true, g));
    net->push_back(std::make_shared<nn::BatchNorm2d>(3));
    net->push_back(std::make_shared<nn::ReLU>());
    net->push_back(std::make_shared<nn::Flatten>());
    net->push_back(std::make_shared<nn::Linear>(3 * 5 * 5, 4, true, g));
    return net;
  };
  Generator g(22);
  Tensor x = randn({12, 2, 5, 5}, g);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < 12; ++i) labels.push_back(i % 4);
  Tensor y = from_vector<int64_t>(labels, {12});

  auto reference = make(31), net = make(31 + test::test_group().rank());
  dist::broadcast_parameters(test::test_group(), *net, 0);
  nn::convert_sync_batchnorm(*net, test::test_group_ptr());
  cross_entropy(reference->forward(x), y).backward();
  dist::Reducer reducer(net->parameters(), test::test_group_ptr(), {.bucket_cap_mb = 0.00002, .first_bucket_mb = 0.0001});
  CHECK(reducer.num_buckets() >= 3);
  reducer.prepare_for_backward(true);
  cross_entropy(net->forward(shard_rows(x)), shard_rows(y)).backward();
  reducer.finalize();
  // float32 with batch norm's cancellations: errors relative to the largest gradient (the conv
  // bias before the batch norm has a gradient of exactly 0, computed as rounding noise).
  const nn::NamedTensors ps = net->named_parameters(), rs = reference->named_parameters();
  double scale = 0;
  for (const auto& [name, p] : rs) scale = std::max(scale, test::max_abs(p.grad()));
  for (size_t i = 0; i < ps.size(); ++i) {
    INFO(ps[i].first);
    check_close(ps[i].second.grad(), rs[i].second.grad(), 1e-5, scale / 10);
  }
  const nn::NamedTensors bs = net->named_buffers(), rbs = reference->named_buffers();
  for (size_t i = 0; i < bs.size(); ++i) {
    INFO(bs[i].first);
    check_close(bs[i].second, rbs[i].second, 1e-5);
  }
}
