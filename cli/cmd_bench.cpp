// dltool bench CONFIG: time forward and backward of every node and the whole training step on
// synthetic batches of the recipe's shapes (like `caffe time`). No data is loaded.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <omp.h>

#include "cli/command.h"
#include "configs/config.h"
#include "engine/ops.h"
#include "cli/run/setup.h"
#include "cli/run/trainer.h"
#include "exporters/json.h"

namespace dl::cli {
namespace {

struct BenchArgs {
  std::string config;
  std::vector<std::string> overrides;
  int64_t steps = 20;
  int64_t warmup = 3;
  bool json = false;
};

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

struct NodeTiming {
  std::string name, type;
  Shape output_shape;
  double forward_ms = 0, backward_ms = 0;
};

std::function<int()> setup_bench(CLI::App& sub) {
  auto a = std::make_shared<BenchArgs>();
  sub.add_option("config", a->config, "recipe YAML file")->required()->check(CLI::ExistingFile);
  sub.add_option("overrides", a->overrides, "key=value overrides, e.g. data.loader.batch_size=128");
  sub.add_option("--steps", a->steps, "timed iterations per measurement")->check(CLI::PositiveNumber);
  sub.add_option("--warmup", a->warmup, "untimed iterations before each measurement")->check(CLI::NonNegativeNumber);
  sub.add_flag("--json", a->json, "print the results as one JSON object");
  return [a]() -> int {
    Config cfg = load_config(a->config, a->overrides);
    train::set_num_threads(cfg.train.threads);
    Device device = Device::parse(cfg.train.device);
    const data::DatasetInfo info = train::peek_data(cfg);
    const train::ModelData data = train::model_data(cfg, info);
    const Shape& sample = data.input.shape;
    auto model = train::build_model(cfg, data, static_cast<uint64_t>(cfg.train.seed));
    model->to(device);
    auto loss_fn = train::build_loss(cfg.loss);
    auto opt = train::build_optimizer(cfg, *model);
    const int64_t B = cfg.data.loader.batch_size;
    Generator gen(static_cast<uint64_t>(cfg.train.seed));
    // Random class indices of `shape` below `classes`.
    auto indices = [&](Shape shape, int64_t classes) {
      std::vector<int64_t> v(static_cast<size_t>(shape_numel(shape)));
      for (auto& e : v) e = static_cast<int64_t>(gen.next_u64() % static_cast<uint64_t>(std::max<int64_t>(classes, 1)));
      return from_vector(v, shape).to(device);
    };
    Shape xs{B};
    xs.insert(xs.end(), sample.begin(), sample.end());
    // Token ids index the vocabulary (num_classes); other inputs are standard normal.
    Tensor x = data.input.dtype == DType::I64 ? indices(xs, data.num_classes) : randn(xs, gen).to(device);
    // Variable-length data: every sample at the longest length (the worst case).
    const TensorList xin = train::model_inputs_of(*model, x, Tensor());
    const int64_t classes = data.num_classes > 0 ? data.num_classes
                            : model->output_shape().empty() ? 1 : model->output_shape().back();
    // One class index per sample, or per position for next-token targets (i64 [B, T]).
    Shape ys{B};
    const Shape& ts = info.target_shape;
    if (info.target_kind == data::TargetKind::sequence && std::all_of(ts.begin(), ts.end(), [](int64_t d) { return d > 0; }))
      ys.insert(ys.end(), info.target_shape.begin(), info.target_shape.end());
    train::LossLabels y = cfg.loss.target == "input" ? x : indices(ys, classes);
    if (nn::loss_def(cfg.loss.type).sequence_target)  // ctc_loss: label sequences for outputs [T, C]
      y = train::random_sequence_labels(cfg.loss, model->output_shape(), B, gen).to(device);

    auto sync = [&] { if (device.is_cuda()) allocator_for(DeviceType::CUDA).synchronize(); };
    auto time_it = [&](const std::function<void()>& fn) {
      for (int64_t i = 0; i < a->warmup; ++i) fn();
      sync();
      double t0 = now_s();
      for (int64_t i = 0; i < a->steps; ++i) fn();
      sync();
      return (now_s() - t0) / static_cast<double>(a->steps);
    };

    model->train();
    // Peak memory of the training step: bytes held by live tensors on the device (the CUDA
    // caching allocator's cache not counted), as torch.cuda.max_memory_allocated.
    Allocator& mem = allocator_for(device.type);
    mem.reset_peak();
    double step_s = time_it([&] {
      Tensor loss = loss_fn(model->forward_nodes(xin, train::loss_nodes(cfg.loss)), y);
      opt->zero_grad();
      loss.backward();
      opt->step();
    });
    const double peak_mib = static_cast<double>(mem.stats().peak) / (1024.0 * 1024.0);
    double eval_s;
    {
      NoGradGuard ng;
      model->eval();
      eval_s = time_it([&] { model->forward(xin); });
      model->train();
    }

    // Per node: forward on the node's real inputs; backward of the node alone.
    std::vector<NodeTiming> nodes;
    std::vector<TensorList> values(model->nodes().size());
    auto value = [&](ValueRef v) { return v.node < 0 ? xin[static_cast<size_t>(v.index)] : values[v.node][v.index]; };
    {
      NoGradGuard ng;
      for (size_t i = 0; i < model->nodes().size(); ++i) {
        const auto& n = model->nodes()[i];
        TensorList in;
        for (ValueRef v : n.inputs) in.push_back(value(v));
        values[i] = n.module->forward_tuple(in);
      }
    }
    for (size_t i = 0; i < model->nodes().size(); ++i) {
      const auto& n = model->nodes()[i];
      TensorList in;
      for (ValueRef v : n.inputs) {
        Tensor t = value(v).detach();
        in.push_back(is_floating(t.dtype()) ? t.requires_grad_(true) : t);
      }
      auto fwd = [&] { return n.module->forward_tuple(in).front(); };
      NodeTiming t{n.name, n.type, values[i][0].shape(), 0, 0};
      t.forward_ms = time_it([&] { fwd(); }) * 1e3;
      Tensor out = fwd();
      if (out.requires_grad()) {
        Tensor g = ones_like(out);
        t.backward_ms = time_it([&] { out.backward(g); }) * 1e3;
      }
      nodes.push_back(t);
    }
    model->zero_grad();

    const double train_sps = static_cast<double>(B) / step_s, eval_sps = static_cast<double>(B) / eval_s;
    if (a->json) {
      json::Array arr;
      for (const auto& t : nodes) {
        json::Array shape;
        for (int64_t d : t.output_shape) shape.push(d);
        arr.push(json::Object().add("name", t.name).add("type", t.type).add("output_shape", shape)
                     .add("forward_ms", t.forward_ms).add("backward_ms", t.backward_ms));
      }
      json::Object o;
      o.add("config", cfg.source_path).add("device", device.str()).add("threads", omp_get_max_threads())
          .add("batch_size", B).add("steps", a->steps).add("train_step_ms", step_s * 1e3)
          .add("train_samples_per_s", train_sps).add("eval_samples_per_s", eval_sps)
          .add("train_peak_memory_mib", peak_mib).add("nodes", arr);
      std::cout << o.str() << "\n";
      return kExitOk;
    }
    std::cout << cfg.name << ": batch " << B << ", " << omp_get_max_threads() << " thread(s), " << device.str()
              << ", " << a->steps << " timed iterations\n\n";
    // Columns as wide as their longest entry (block nodes are named like "stage2.0.conv1").
    size_t wn = 4, wt = 4, wo = 6;
    for (const auto& t : nodes)
      wn = std::max(wn, t.name.size()), wt = std::max(wt, t.type.size()), wo = std::max(wo, shape_str(t.output_shape).size());
    auto col = [](size_t w) { return std::setw(static_cast<int>(w + 2)); };
    std::cout << std::left << col(wn) << "node" << col(wt) << "type" << col(wo) << "output" << std::right
              << std::setw(12) << "forward ms" << std::setw(13) << "backward ms" << "\n";
    std::cout << std::fixed << std::setprecision(3);
    for (const auto& t : nodes)
      std::cout << std::left << col(wn) << t.name << col(wt) << t.type << col(wo) << shape_str(t.output_shape)
                << std::right << std::setw(12) << t.forward_ms << std::setw(13) << t.backward_ms << "\n";
    std::cout << std::setprecision(2) << "\ntraining step (forward, loss, backward, " << cfg.optimizer.type
              << "): " << step_s * 1e3 << " ms = " << std::setprecision(0) << train_sps << " samples/s\n"
              << "inference (eval mode, no grad): " << std::setprecision(2) << eval_s * 1e3 << " ms = "
              << std::setprecision(0) << eval_sps << " samples/s\n"
              << "peak memory of the training step on " << device.str() << ": " << std::setprecision(1) << peak_mib
              << " MiB (live tensors)\n";
    return kExitOk;
  };
}

}  // namespace

DL_REGISTER_COMMAND(bench, "bench", "Time forward/backward per node and the whole training step (like caffe time)",
                    setup_bench);

}  // namespace dl::cli
