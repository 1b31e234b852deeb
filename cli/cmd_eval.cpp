// dltool eval CHECKPOINT [--config CONFIG] [--split val|test] [--json]: loss, accuracy,
// per-class accuracy and the confusion matrix of a checkpoint on a data split.
#include <iomanip>
#include <iostream>

#include "cli/command.h"
#include "cli/training.h"
#include "configs/config.h"
#include "cli/run/trainer.h"
#include "exporters/json.h"

namespace dl::cli {
namespace {

struct EvalArgs {
  std::string checkpoint;
  std::string config;
  std::vector<std::string> overrides;
  std::string split = "test";
  bool json = false;
};

std::vector<std::string> class_names(const Config& cfg, int64_t n) {
  static const char* kFashion[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  std::vector<std::string> out;
  for (int64_t c = 0; c < n; ++c)
    out.push_back(cfg.data.dataset == "fashion_mnist" && n == 10 ? kFashion[c] : std::to_string(c));
  return out;
}

std::function<int()> setup_eval(CLI::App& sub) {
  auto a = std::make_shared<EvalArgs>();
  sub.add_option("checkpoint", a->checkpoint, "checkpoint (.h5) or run directory")->required();
  sub.add_option("overrides", a->overrides, "key=value overrides of the config, e.g. data.loader.batch_size=1000");
  sub.add_option("--config", a->config, "recipe to build the model and data from (default: the checkpoint's own config)");
  sub.add_option("--split", a->split, "val or test")->check(CLI::IsMember({"val", "test"}));
  sub.add_flag("--json", a->json, "print the result as one JSON object");
  return [a]() -> int {
    std::string path = train::resolve_checkpoint_path(a->checkpoint);
    Checkpoint ckpt = load_checkpoint(path, /*weights_only=*/true);
    Config cfg = checkpoint_config(ckpt, path, a->config, a->overrides);
    train::EvalResult r = train::evaluate_weights(cfg, ckpt.model, path, a->split);
    const int64_t C = static_cast<int64_t>(r.per_class_accuracy.size());
    auto names = class_names(cfg, C);
    if (a->json) {
      json::Array per_class, confusion, cls;
      for (double v : r.per_class_accuracy) per_class.push(v);
      for (const auto& row : r.confusion) {
        json::Array jr;
        for (int64_t v : row) jr.push(v);
        confusion.push(jr);
      }
      for (const auto& n : names) cls.push(n);
      json::Object o;
      o.add("checkpoint", path).add("split", a->split).add("samples", r.samples).add("loss", r.loss)
          .add("accuracy", r.accuracy).add("classes", cls).add("per_class_accuracy", per_class)
          .add("confusion_matrix", confusion);
      if (r.top_k_accuracy) o.add("top" + std::to_string(r.top_k) + "_accuracy", *r.top_k_accuracy);
      if (r.knn_accuracy) o.add("knn_accuracy", *r.knn_accuracy);
      std::cout << o.str() << "\n";
      return kExitOk;
    }
    std::cout << path << " on " << a->split << " (" << r.samples << " samples)\n"
              << std::fixed << std::setprecision(4) << "loss      " << r.loss << "\naccuracy  " << r.accuracy << "\n";
    if (r.top_k_accuracy) std::cout << "top" << r.top_k << "      " << *r.top_k_accuracy << "\n";
    if (r.knn_accuracy) std::cout << "knn       " << *r.knn_accuracy << "  (leave-one-out 1-nearest-neighbour of the outputs)\n";
    std::cout << "\nper-class accuracy:\n";
    for (int64_t c = 0; c < C; ++c)
      std::cout << "  " << std::left << std::setw(12) << names[c] << std::right << std::setw(8) << r.per_class_accuracy[c] << "\n";
    std::cout << "\nconfusion matrix (rows: true class, columns: predicted):\n      ";
    for (int64_t c = 0; c < C; ++c) std::cout << std::setw(6) << c;
    std::cout << "\n";
    for (int64_t t = 0; t < C; ++t) {
      std::cout << std::setw(6) << t;
      for (int64_t p = 0; p < C; ++p) std::cout << std::setw(6) << r.confusion[t][p];
      std::cout << "\n";
    }
    return kExitOk;
  };
}

}  // namespace

DL_REGISTER_COMMAND(eval, "eval", "Evaluate a checkpoint: loss, accuracy, per-class accuracy, confusion matrix",
                    setup_eval);

}  // namespace dl::cli
