// Engine benchmark: the same workloads as bench/torch_engine_bench.py, timed in dltool's
// engine. bench/run_engine_bench.sh runs both and prints the ratios (README "Performance").
//
//   build/bench_engine [--threads N] [--device cpu|cuda] [--only WORKLOAD] [--iters N]
//                      [--precision fp32|tf32|bf16|fp16]
//   -> one JSON object on stdout. WORKLOAD: sgemm_1024, conv2d, batch_norm2d, mlp, lenet, lstm,
//   cnn_bn, resnet20, autoencoder. On CUDA, training workloads also report <name>_peak_mib: the peak of the
//   memory held by live tensors (bench/gpu_bench.sh compares it with PyTorch's). --iters N: one warm-up and exactly N timed calls per workload (for
//   valgrind --tool=callgrind, whose instruction counts do not depend on the machine's load).
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>

#include "engine/amp/autocast.h"
#include "engine/amp/grad_scaler.h"
#include "engine/graph/model.h"
#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "engine/optim/optimizer.h"
#include "engine/train/step.h"
#include "bench/zoo/models.h"

using namespace dl;
using namespace dl::zoo;

namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

Device g_device = Device::cpu();

void sync() {
  if (g_device.is_cuda()) allocator_for(DeviceType::CUDA).synchronize();
}

// --precision: training steps run through train::TrainStep with autocast (bf16/fp16) and, for
// fp16, a GradScaler, as `dltool train` with train.precision does; tf32 allows TF32 GEMMs and
// convolutions on CUDA (the CPU has no TF32).
amp::Precision g_precision = amp::Precision::FP32;

int g_iters = 0;  // --iters: exactly this many timed calls (callgrind runs), else by time

// Seconds per call: warm-up, then repeat until at least min_time seconds and 5 calls.
double timeit(const std::function<void()>& fn, double min_time = 1.0, int warmup = 3) {
  if (g_iters > 0) warmup = 1;
  for (int i = 0; i < warmup; ++i) fn();
  sync();
  int n = 0;
  double t0 = now_s();
  for (;;) {
    fn();
    ++n;
    sync();
    double el = now_s() - t0;
    if (g_iters > 0 ? n >= g_iters : el >= min_time && n >= 5) return el / n;
  }
}

// Seconds per training step: forward + loss (under autocast when --precision asks), backward,
// optimizer step and zero_grad(set_to_none), through the engine's step object (which on CUDA
// reads nothing back mid-step, like the CLI's loop; timeit synchronises after each step, as
// torch_gpu_bench.py does).
double time_steps(optim::Optimizer& opt, const std::function<Tensor()>& forward_loss) {
  train::StepOptions so;
  so.autocast = amp::autocast_dtype(g_precision);
  so.defer_host_reads = g_device.is_cuda();  // as dltool's training loop on CUDA: no read of the loss mid-step
  train::TrainStep step(opt, so);
  amp::GradScalerOptions scaling;
  scaling.enabled = g_precision == amp::Precision::FP16;
  amp::GradScaler scaler(scaling);
  if (scaler.enabled()) step.set_grad_scaler(&scaler);
  return timeit([&] { step.run(forward_loss); });
}

double train_step_time(const std::shared_ptr<nn::Module>& model, int64_t batch, Generator& g) {
  model->to(g_device);
  auto opt = optim::make_optimizer("SGD", model->named_parameters(), {{"lr", 0.01}, {"momentum", 0.9}});
  Tensor x = randn({batch, 1, 28, 28}, g).to(g_device);
  std::vector<int64_t> yv(static_cast<size_t>(batch));
  for (auto& v : yv) v = static_cast<int64_t>(g.next_u64() % 10);
  Tensor y = from_vector(yv, {batch}).to(g_device);
  return time_steps(*opt, [&] { return cross_entropy(model->forward(x), y); });
}

// The autoencoder's step: mean squared error between the reconstruction and the input.
double autoencoder_step_time(int64_t batch, Generator& g) {
  auto model = autoencoder(g);
  model->to(g_device);
  auto opt = optim::make_optimizer("SGD", model->named_parameters(), {{"lr", 0.01}, {"momentum", 0.9}});
  Tensor x = rand({batch, 1, 28, 28}, g).to(g_device);
  return time_steps(*opt, [&] { return mse_loss(model->forward(x), x); });
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
  return time_steps(*opt, [&] { return cross_entropy(fc->forward(last_step(lstm->forward(x))), y); });
}

// One optimizer step over ResNet-20's parameters (64 tensors, 0.27M values) with fixed
// gradients: the fused multi-tensor kernels (one launch per param group on CUDA) or, with
// `fused` false, the engine-op path (~6-10 ops per tensor).
double optimizer_step_time(const std::string& type, const optim::Options& options, bool fused, Generator& g) {
  auto model = resnet20(g);
  model->to(g_device);
  auto params = model->named_parameters();
  for (auto& [name, p] : params) p.set_grad(randn(p.shape(), g).to(g_device) * 0.01);
  auto opt = optim::make_optimizer(type, params, options);
  opt->set_fused(fused);
  return timeit([&] { opt->step(); }, 0.5);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = omp_get_num_procs();
  std::string only;  // a workload's name: time only that one (A/B runs)
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc) g_device = Device::parse(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) g_iters = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--precision") && i + 1 < argc) {
      try {
        g_precision = amp::parse_precision(argv[++i]);
      } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "bench_engine: --precision: %s\n", e.what());
        return 2;
      }
    }
    else {
      std::fprintf(stderr, "usage: bench_engine [--threads N] [--device cpu|cuda:N] [--only WORKLOAD] [--iters N] "
                   "[--precision fp32|tf32|bf16|fp16]\n");
      return 2;
    }
  }
  omp_set_num_threads(threads);
  amp::set_allow_tf32(g_precision == amp::Precision::TF32);
  Generator g(0);
  // Each workload prints "<name>_<unit>" keys: a step time in ms and, for training steps, samples/s.
  std::string json = "{\"device\": \"" + g_device.str() + "\", \"precision\": \"" +
                     amp::precision_name(g_precision) + "\", \"threads\": " + std::to_string(threads);
  auto put = [&](const std::string& key, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", v);
    json += ", \"" + key + "\": " + buf;
  };
  auto step = [&](const std::string& name, int64_t batch, const std::function<double()>& seconds) {
    if (!only.empty() && only != name) return;
    if (g_device.is_cuda()) allocator_for(DeviceType::CUDA).reset_peak();
    double s = seconds();
    put(name + "_step_ms", s * 1e3);
    put(name + "_samples_per_s", static_cast<double>(batch) / s);
    // GPU memory held by live tensors at the peak (the caching allocator's cache not counted),
    // as torch.cuda.max_memory_allocated.
    if (g_device.is_cuda())
      put(name + "_peak_mib", static_cast<double>(allocator_for(DeviceType::CUDA).stats().peak) / (1 << 20));
  };
  if (only.empty() || only == "sgemm_1024") {
    const int64_t n = 1024;
    Tensor a = randn({n, n}, g).to(g_device), b = randn({n, n}, g).to(g_device);
    double t = timeit([&] { mm(a, b); });
    put("sgemm_1024_gflops", 2.0 * n * n * n / t / 1e9);
  }
  if (only.empty() || only == "conv2d") {
    Tensor x = randn({32, 16, 28, 28}, g).to(g_device).requires_grad_(true);
    auto conv = std::make_shared<nn::Conv2d>(16, 32, 3, 1, 1, 1, 1, true, g);
    conv->to(g_device);
    put("conv2d_fwd_bwd_ms", timeit([&] { sum(conv->forward(x)).backward(); }) * 1e3);
  }
  if (only.empty() || only == "batch_norm2d") {  // ResNet-20's first stage, training mode
    Tensor x = randn({128, 16, 28, 28}, g).to(g_device).requires_grad_(true);
    Tensor gy = randn({128, 16, 28, 28}, g).to(g_device);
    auto bn = std::make_shared<nn::BatchNorm2d>(16);
    bn->to(g_device);
    put("batch_norm2d_fwd_bwd_ms", timeit([&] { bn->forward(x).backward(gy); }) * 1e3);
  }
  step("mlp", 128, [&] { return train_step_time(mlp(g), 128, g); });
  step("lenet", 64, [&] { return train_step_time(lenet(g), 64, g); });
  step("lstm", 64, [&] { return lstm_step_time(64, g); });
  step("cnn_bn", 64, [&] { return train_step_time(cnn_bn(g), 64, g); });
  step("resnet20", 128, [&] { return train_step_time(resnet20(g), 128, g); });
  step("autoencoder", 64, [&] { return autoencoder_step_time(64, g); });
  if (only.empty() || only.rfind("optim", 0) == 0) {  // "optim": every optimizer, "optim_Adam": one
    const std::vector<std::pair<std::string, optim::Options>> optimizers{
        {"SGD", {{"lr", 0.01}, {"momentum", 0.9}}}, {"Adam", {}}, {"AdamW", {}}, {"RMSprop", {}},
        {"Adagrad", {}}, {"Adadelta", {}}, {"Adamax", {}}, {"NAdam", {}}, {"RAdam", {}}, {"ASGD", {}},
        {"Rprop", {}}};
    for (const auto& [type, options] : optimizers) {
      if (only.size() > 5 && only != "optim_" + type) continue;
      put("optim_" + type + "_step_ms", optimizer_step_time(type, options, true, g) * 1e3);
      put("optim_" + type + "_ops_step_ms", optimizer_step_time(type, options, false, g) * 1e3);
    }
  }
  std::printf("%s}\n", json.c_str());
  return 0;
}
