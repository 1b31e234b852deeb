// Image-folder input pipeline benchmark: data.format image_folder (decode PNG/JPEG) + random
// crop + horizontal flip + to_float/normalize + collate, through the DataLoader with worker
// threads, no model. bench/image_folder_bench.sh runs it beside the same pipeline in PyTorch
// (bench/torch_image_folder_bench.py) and prints the ratio.
//
//   build/bench_image_pipeline --root build/data/fashion-mnist-png [--dir train] [--color gray]
//       [--workers 0,1,2] [--batch-size 64] [--batches 0 (= one epoch)] [--crop 28] [--padding 2]
//   -> one JSON object on stdout: {"samples": N, "best_samples_per_s": X, "best_workers": W,
//      "runs": [{"workers": W, "seconds": T, "samples_per_s": X}, ...]}
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "datasets/dataloader.h"
#include "datasets/format.h"

using namespace dl;
using namespace dl::data;

namespace {

struct Args {
  std::string root, dir = "train", color = "gray";
  std::vector<int64_t> workers = {0, 1, 2};
  int64_t batch_size = 64, batches = 0, crop = 28, padding = 2;
};

std::vector<int64_t> int_list(const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) v.push_back(std::stoll(item));
  return v;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument("missing value after " + k);
    const std::string v = argv[++i];
    if (k == "--root")
      a.root = v;
    else if (k == "--dir")
      a.dir = v;
    else if (k == "--color")
      a.color = v;
    else if (k == "--workers")
      a.workers = int_list(v);
    else if (k == "--batch-size")
      a.batch_size = std::stoll(v);
    else if (k == "--batches")
      a.batches = std::stoll(v);
    else if (k == "--crop")
      a.crop = std::stoll(v);
    else if (k == "--padding")
      a.padding = std::stoll(v);
    else
      throw std::invalid_argument("unknown option " + k);
  }
  if (a.root.empty())
    throw std::invalid_argument("--root is required (recipes/image_folder/make_folder.py writes one)");
  return a;
}

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    FormatArgs fa;
    fa.root = a.root;
    fa.options["color"] = a.color;
    fa.splits["train"]["dir"] = a.dir;
    const DatasetPtr data = format_def("image_folder").open(fa).train;

    // torchvision: RandomCrop(crop, padding), RandomHorizontalFlip(), ToTensor(), Normalize.
    TransformPipeline pipeline;
    pipeline.add("random_crop", AttrMap{{"size", a.crop}, {"padding", std::vector<int64_t>{a.padding}}})
        .add("random_horizontal_flip", AttrMap{})
        .to_float()
        .normalize({0.2860}, {0.3530});

    std::string runs;
    double best = 0;
    int64_t best_workers = -1, samples = 0;
    for (const int64_t w : a.workers) {
      LoaderOptions o;
      o.batch_size = a.batch_size;
      o.shuffle = true;
      o.seed = 1;
      o.workers = w;
      o.transform = pipeline;
      DataLoader loader(data, o);
      const double t0 = now_s();
      loader.start_epoch(0);
      int64_t n = 0, b = 0;
      while (a.batches == 0 || b < a.batches) {
        auto batch = loader.next();
        if (!batch) break;
        n += batch->size();
        ++b;
      }
      const double dt = now_s() - t0;
      const double rate = static_cast<double>(n) / dt;
      char run[160];
      std::snprintf(run, sizeof run, "%s{\"workers\": %lld, \"seconds\": %.3f, \"samples_per_s\": %.1f}",
                    runs.empty() ? "" : ", ", static_cast<long long>(w), dt, rate);
      runs += run;
      std::fprintf(stderr, "dltool: workers %lld: %lld samples in %.2f s = %.0f samples/s\n", static_cast<long long>(w),
                   static_cast<long long>(n), dt, rate);
      if (rate > best) best = rate, best_workers = w, samples = n;
    }
    std::printf("{\"samples\": %lld, \"best_samples_per_s\": %.1f, \"best_workers\": %lld, \"runs\": [%s]}\n",
                static_cast<long long>(samples), best, static_cast<long long>(best_workers), runs.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_image_pipeline: %s\n", e.what());
    return 1;
  }
}
