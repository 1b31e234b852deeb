// dltool eval CHECKPOINT [--config CONFIG] [--split val|test] [--json]: loss, accuracy,
// per-class precision/recall/F1 (and macro averages) and the confusion matrix of a checkpoint
// on a data split, classes named as the checkpoint (or the config's data) names them;
// regression targets report mae/rmse/r2 instead.
#include <algorithm>
#include <iomanip>
#include <tuple>
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

// Class names for the report: the checkpoint's (saved by the run that trained it), else the
// split's (the config's data), else the indices.
std::vector<std::string> class_names(const Checkpoint& ckpt, const train::EvalResult& r) {
  const size_t C = r.confusion.size();
  const std::vector<std::string>& saved = ckpt.class_names.size() == C ? ckpt.class_names : r.class_names;
  std::vector<std::string> out;
  for (size_t c = 0; c < C; ++c) out.push_back(c < saved.size() ? saved[c] : std::to_string(c));
  return out;
}

std::string eval_json(const std::string& path, const std::string& split, const train::EvalResult& r,
                      const std::vector<std::string>& names) {
  json::Object o;
  o.add("checkpoint", path).add("split", split).add("samples", r.samples).add("loss", r.loss);
  if (r.regression) {
    o.add("mae", r.mae).add("rmse", r.rmse).add("r2", r.r2);
    return o.str();
  }
  if (r.sequence) return o.add("sequence_accuracy", r.sequence_accuracy.value_or(0)).str();
  json::Array confusion;
  for (const auto& row : r.confusion) confusion.push(json::Array::of(row));
  o.add("accuracy", r.accuracy).add("classes", json::Array::of(names)).add("per_class_accuracy", json::Array::of(r.per_class_accuracy))
      .add("precision", json::Array::of(r.precision)).add("recall", json::Array::of(r.recall)).add("f1", json::Array::of(r.f1))
      .add("support", json::Array::of(r.support)).add("macro_precision", r.macro_precision).add("macro_recall", r.macro_recall)
      .add("macro_f1", r.macro_f1).add("confusion_matrix", confusion);
  if (r.top_k_accuracy) o.add("top" + std::to_string(r.top_k) + "_accuracy", *r.top_k_accuracy);
  if (r.knn_accuracy) o.add("knn_accuracy", *r.knn_accuracy);
  if (r.bits_per_token) o.add("bits_per_token", *r.bits_per_token);
  return o.str();
}

// Up to this many classes the confusion matrix is printed whole (6 characters a column).
constexpr size_t kMaxMatrixClasses = 30;

void print_eval(std::ostream& os, const std::string& path, const std::string& split, const train::EvalResult& r,
                const std::vector<std::string>& names) {
  os << path << " on " << split << " (" << r.samples << " samples)\n" << std::fixed << std::setprecision(4)
     << "loss      " << r.loss << "\n";
  if (r.regression) {
    os << "mae       " << r.mae.value_or(0) << "\nrmse      " << r.rmse.value_or(0) << "\nr2        " << r.r2.value_or(0) << "\n";
    return;
  }
  if (r.sequence) {  // CTC: whole sequences, no per-class table
    os << "sequence_accuracy  " << r.sequence_accuracy.value_or(0) << "  (greedy CTC decoding == the labels)\n";
    return;
  }
  os << "accuracy  " << r.accuracy << "\n";
  if (r.top_k_accuracy) os << "top" << r.top_k << "      " << *r.top_k_accuracy << "\n";
  if (r.knn_accuracy) os << "knn       " << *r.knn_accuracy << "  (leave-one-out 1-nearest-neighbour of the outputs)\n";
  if (r.bits_per_token) os << "bits/token " << *r.bits_per_token << "  (mean cross-entropy in bits per predicted token)\n";
  const size_t C = names.size();
  int w = 12;
  std::vector<std::string> shown;  // escaped: a vocabulary's "\n" must not break the table
  for (const auto& n : names) shown.push_back(class_name_text(n)), w = std::max(w, static_cast<int>(shown.back().size()) + 1);
  os << "\n" << std::left << std::setw(w + 7) << "class" << std::right << std::setw(10) << "precision" << std::setw(9)
     << "recall" << std::setw(9) << "f1" << std::setw(9) << "support" << "\n";
  for (size_t c = 0; c < C; ++c)
    os << std::setw(4) << c << "  " << std::left << std::setw(w + 1) << shown[c] << std::right << std::setw(10)
       << r.precision[c] << std::setw(9) << r.recall[c] << std::setw(9) << r.f1[c] << std::setw(9) << r.support[c] << "\n";
  os << std::left << std::setw(w + 7) << "macro avg" << std::right << std::setw(10) << r.macro_precision << std::setw(9)
     << r.macro_recall << std::setw(9) << r.macro_f1 << std::setw(9) << r.samples << "\n";
  if (C > kMaxMatrixClasses) {
    // A C x C table is unreadable for a vocabulary: the most frequent mistakes instead.
    std::vector<std::tuple<int64_t, size_t, size_t>> cells;  // count, true, predicted
    for (size_t t = 0; t < C; ++t)
      for (size_t p = 0; p < C; ++p)
        if (t != p && r.confusion[t][p] > 0) cells.emplace_back(r.confusion[t][p], t, p);
    const size_t n = std::min<size_t>(cells.size(), 15);
    std::partial_sort(cells.begin(), cells.begin() + static_cast<std::ptrdiff_t>(n), cells.end(),
                      [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
    os << "\nmost frequent confusions (" << C << " classes; --json has the whole confusion matrix):\n";
    for (size_t i = 0; i < n; ++i) {
      const auto& [count, t, p] = cells[i];
      os << std::setw(8) << count << "  " << std::setw(4) << t << " '" << shown[t] << "'  predicted as  " << p << " '"
         << shown[p] << "'\n";
    }
    return;
  }
  os << "\nconfusion matrix (rows: true class, columns: predicted class index):\n" << std::setw(w + 7) << "";
  for (size_t c = 0; c < C; ++c) os << std::setw(6) << c;
  os << "\n";
  for (size_t t = 0; t < C; ++t) {
    os << std::setw(4) << t << "  " << std::left << std::setw(w + 1) << shown[t] << std::right;
    for (size_t p = 0; p < C; ++p) os << std::setw(6) << r.confusion[t][p];
    os << "\n";
  }
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
    const std::vector<std::string> names = class_names(ckpt, r);
    if (a->json) std::cout << eval_json(path, a->split, r, names) << "\n";
    else print_eval(std::cout, path, a->split, r, names);
    return kExitOk;
  };
}

}  // namespace

DL_REGISTER_COMMAND(eval, "eval", "Evaluate a checkpoint: loss, accuracy, per-class precision/recall/F1, confusion matrix (mae/rmse/r2 for regression)",
                    setup_eval);

}  // namespace dl::cli
