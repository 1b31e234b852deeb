// Engine benchmark: the same workloads as bench/torch_engine_bench.py, timed in dltool's
// engine. bench/run_engine_bench.sh runs both and prints the ratios (README "Performance").
//
//   build/bench_engine [--threads N] [--device cpu|cuda]    -> one JSON object on stdout
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "engine/optim/optimizer.h"

using namespace dl;

namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

Device g_device = Device::cpu();

void sync() {
  if (g_device.is_cuda()) allocator_for(DeviceType::CUDA).synchronize();
}

// Seconds per call: warm-up, then repeat until at least min_time seconds and 5 calls.
double timeit(const std::function<void()>& fn, double min_time = 1.0, int warmup = 3) {
  for (int i = 0; i < warmup; ++i) fn();
  sync();
  int n = 0;
  double t0 = now_s();
  for (;;) {
    fn();
    ++n;
    sync();
    double el = now_s() - t0;
    if (el >= min_time && n >= 5) return el / n;
  }
}

std::shared_ptr<nn::Sequential> mlp(Generator& g) {
  auto m = std::make_shared<nn::Sequential>();
  m->push_back(std::make_shared<nn::Flatten>());
  m->push_back(std::make_shared<nn::Linear>(784, 512, true, g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Linear>(512, 256, true, g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Linear>(256, 10, true, g));
  return m;
}

std::shared_ptr<nn::Sequential> lenet(Generator& g) {
  auto m = std::make_shared<nn::Sequential>();
  m->push_back(std::make_shared<nn::Conv2d>(1, 6, 5, 1, 2, 1, 1, true, g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::MaxPool2d>(2));
  m->push_back(std::make_shared<nn::Conv2d>(6, 16, 5, 1, 0, 1, 1, true, g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::MaxPool2d>(2));
  m->push_back(std::make_shared<nn::Flatten>());
  m->push_back(std::make_shared<nn::Linear>(400, 120, true, g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Linear>(120, 84, true, g));
  m->push_back(std::make_shared<nn::ReLU>());
  m->push_back(std::make_shared<nn::Linear>(84, 10, true, g));
  return m;
}

double train_step_time(const std::shared_ptr<nn::Sequential>& model, int64_t batch, Generator& g) {
  model->to(g_device);
  auto opt = optim::make_optimizer("SGD", model->named_parameters(), {{"lr", 0.01}, {"momentum", 0.9}});
  Tensor x = randn({batch, 1, 28, 28}, g).to(g_device);
  std::vector<int64_t> yv(static_cast<size_t>(batch));
  for (auto& v : yv) v = static_cast<int64_t>(g.next_u64() % 10);
  Tensor y = from_vector(yv, {batch}).to(g_device);
  return timeit([&] {
    opt->zero_grad(true);
    Tensor loss = cross_entropy(model->forward(x), y);
    loss.backward();
    opt->step();
  });
}

// The row LSTM of recipes/fashion_mnist/lstm.yaml: a 28x28 image read as 28 steps of 28
// features, LSTM(28, 128, 2 layers, batch_first), the last step -> Linear(128, 10), cross
// entropy, SGD step. Seconds per step.
double lstm_step_time(int64_t batch, Generator& g) {
  auto lstm = std::make_shared<nn::LSTM>(28, 128, 2, true, true, 0.0, false, g);
  auto fc = std::make_shared<nn::Linear>(128, 10, true, g);
  lstm->to(g_device);
  fc->to(g_device);
  auto params = lstm->named_parameters();
  for (auto& p : fc->named_parameters()) params.push_back({"fc." + p.first, p.second});
  auto opt = optim::make_optimizer("SGD", params, {{"lr", 0.01}, {"momentum", 0.9}});
  Tensor x = randn({batch, 28, 28}, g).to(g_device);
  std::vector<int64_t> yv(static_cast<size_t>(batch));
  for (auto& v : yv) v = static_cast<int64_t>(g.next_u64() % 10);
  Tensor y = from_vector(yv, {batch}).to(g_device);
  return timeit([&] {
    opt->zero_grad(true);
    Tensor loss = cross_entropy(fc->forward(last_step(lstm->forward(x))), y);
    loss.backward();
    opt->step();
  });
}

}  // namespace

int main(int argc, char** argv) {
  int threads = omp_get_num_procs();
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc) g_device = Device::parse(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_engine [--threads N] [--device cpu|cuda:N]\n");
      return 2;
    }
  }
  omp_set_num_threads(threads);
  Generator g(0);
  const int64_t n = 1024;
  Tensor a = randn({n, n}, g).to(g_device), b = randn({n, n}, g).to(g_device);
  double t = timeit([&] { mm(a, b); });
  double gflops = 2.0 * n * n * n / t / 1e9;

  Tensor x = randn({32, 16, 28, 28}, g).to(g_device).requires_grad_(true);
  auto conv = std::make_shared<nn::Conv2d>(16, 32, 3, 1, 1, 1, 1, true, g);
  conv->to(g_device);
  double conv_ms = timeit([&] {
    Tensor out = conv->forward(x);
    sum(out).backward();
  }) * 1e3;
  double mlp_s = train_step_time(mlp(g), 128, g);
  double lenet_s = train_step_time(lenet(g), 64, g);
  double lstm_s = lstm_step_time(64, g);
  std::printf("{\"device\": \"%s\", \"threads\": %d, \"sgemm_1024_gflops\": %.2f, \"conv2d_fwd_bwd_ms\": %.3f, "
              "\"mlp_step_ms\": %.3f, \"mlp_samples_per_s\": %.1f, \"lenet_step_ms\": %.3f, "
              "\"lenet_samples_per_s\": %.1f, \"lstm_step_ms\": %.3f, \"lstm_samples_per_s\": %.1f}\n",
              g_device.str().c_str(), threads, gflops, conv_ms, mlp_s * 1e3, 128 / mlp_s, lenet_s * 1e3, 64 / lenet_s,
              lstm_s * 1e3, 64 / lstm_s);
  return 0;
}
