// A small LeNet-like network (conv + batch norm/ReLU + max pool + conv + adaptive average pool +
// linear) trained for 3 SGD steps on CUDA and on the CPU from the same weights and data: the
// losses and the final weights agree. It exercises the cuDNN convolutions, the pooling and
// batch-norm kernels and the running statistics together, through autograd, as training
// does, and a second GPU run repeats the first bit for bit. Exits with code 4 (ctest:
// "Skipped") when no GPU is usable; compiles in CPU-only builds.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "engine/ops.h"
#include "tests/support/fixtures.h"

using namespace dl;

namespace {

struct Net {
  std::vector<Tensor> params;  // w1 [4,1,3,3], b1 [4], g1 [4], be1 [4], w2 [6,4,3,3], w3 [3,24], b3 [3]
  Tensor running_mean, running_var;  // [4]
};

Net initial_net() {
  Generator g(77);
  Net n;
  for (const Shape& s : std::vector<Shape>{{4, 1, 3, 3}, {4}, {4}, {4}, {6, 4, 3, 3}, {3, 24}, {3}})
    n.params.push_back(mul(randn(s, g), 0.2));
  n.params[2] = add(n.params[2], 1.0);  // batch-norm scale around 1
  n.running_mean = zeros({4});
  n.running_var = ones({4});
  return n;
}

Net to_device(const Net& n, const Device& d) {
  Net r;
  for (const Tensor& p : n.params) r.params.push_back(p.to(d));
  r.running_mean = n.running_mean.to(d);
  r.running_var = n.running_var.to(d);
  return r;
}

// One SGD step (lr 0.05) on the batch; returns the loss before the step.
double sgd_step(Net& n, const Tensor& x, const Tensor& target) {
  std::vector<Tensor> leaf;
  for (const Tensor& p : n.params) leaf.push_back(p.detach().requires_grad_());
  Tensor h = conv2d(x, leaf[0], leaf[1], {1, 1}, {1, 1});                                   // [8, 4, 12, 12]
  h = batch_norm_relu(h, leaf[2], leaf[3], n.running_mean, n.running_var, true, 0.1, 1e-5);
  h = max_pool2d(h, {2, 2}, {2, 2});                                                        // [8, 4, 6, 6]
  h = relu(conv2d(h, leaf[4]));                                                             // [8, 6, 4, 4]
  h = adaptive_avg_pool2d(h, {2, 2}).reshape({x.size(0), 24});                              // [8, 24]
  Tensor out = linear(h, leaf[5], leaf[6]);                                                 // [8, 3]
  Tensor loss = mean(pow(sub(out, target), 2.0));
  loss.backward();
  for (size_t i = 0; i < n.params.size(); ++i) n.params[i] = sub(n.params[i], mul(leaf[i].grad(), 0.05));
  return loss.item();
}

}  // namespace

TEST_CASE("cuda: a conv + batch norm + pool net trains 3 SGD steps like the CPU", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  Generator g(78);
  const Tensor x = randn({8, 1, 12, 12}, g), target = randn({8, 3}, g);
  const Net start = initial_net();

  auto train = [&](const Device& d) {
    Net n = to_device(start, d);
    std::vector<double> losses;
    const Tensor xd = x.to(d), td = target.to(d);
    for (int step = 0; step < 3; ++step) losses.push_back(sgd_step(n, xd, td));
    return std::make_pair(losses, n);
  };
  auto [cpu_losses, cpu_net] = train(Device::cpu());
  auto [gpu_losses, gpu_net] = train(Device::cuda(0));
  for (size_t i = 0; i < cpu_losses.size(); ++i) {
    INFO("step " << i << ": cpu " << cpu_losses[i] << ", cuda " << gpu_losses[i]);
    CHECK(std::fabs(gpu_losses[i] - cpu_losses[i]) <= 1e-4 * std::fabs(cpu_losses[i]));
  }
  CHECK(gpu_losses.back() < gpu_losses.front());  // it trains
  for (size_t i = 0; i < cpu_net.params.size(); ++i) {
    INFO("parameter " << i);
    CHECK_CLOSE(gpu_net.params[i].cpu(), cpu_net.params[i], 1e-4, 1e-5);
  }
  CHECK_CLOSE(gpu_net.running_mean.cpu(), cpu_net.running_mean, 1e-4, 1e-5);
  CHECK_CLOSE(gpu_net.running_var.cpu(), cpu_net.running_var, 1e-4, 1e-5);
  // Run to run on the GPU the bits repeat (exact resume relies on it): cuDNN's algorithms are
  // chosen deterministic (kernels/cuda/conv.cpp), our kernels use no atomics.
  auto [again_losses, again_net] = train(Device::cuda(0));
  CHECK(again_losses == gpu_losses);
  for (size_t i = 0; i < gpu_net.params.size(); ++i) {
    INFO("parameter " << i << " on a second GPU run");
    CHECK_CLOSE(again_net.params[i].cpu(), gpu_net.params[i].cpu(), 0.0, 0.0);
  }
}
