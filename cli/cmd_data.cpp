// dltool data RECIPE [overrides] [--split S] [--json] [--max-samples N]: what a recipe's data
// holds, without training. Per split: the sample count, the classes with their counts (from
// class_of, nothing decoded) and an imbalance flag, the sample shape and dtype as stored and
// after the split's transforms, the target kind, and from one decoding pass (through a
// DataLoader with data.transforms minus normalize, plus to_float for u8 images): the
// per-channel mean/std of the inputs (the numbers for `normalize`), regression targets'
// mean/std/min/max, and the first sample that fails to decode (exit 1).
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <limits>
#include <numeric>
#include <optional>
#include <sstream>

#include "cli/command.h"
#include "cli/run/setup.h"
#include "configs/config.h"
#include "datasets/dataloader.h"
#include "exporters/checkpoint.h"
#include "exporters/json.h"

namespace dl::cli {
namespace {

struct DataArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string split;            // "" = every split the recipe has
  bool json = false;
  int64_t max_samples = 10000;  // decoded per split for the statistics; 0 = all
};

// A class count ratio above this flags the split as imbalanced.
constexpr double kImbalanceRatio = 1.5;
constexpr int64_t kStatsBatch = 256;
constexpr size_t kClassLines = 50;  // text output lists at most this many classes

// Mean, variance, min and max per index of dimension 1 of [B, K, ...] batches (over every
// other dimension; a [B] batch is one column), merged batch by batch (Chan et al.), in f64.
class ColumnMoments {
 public:
  void add(const Tensor& batch) {
    const Tensor x = batch.to(DType::F64).contiguous();
    const int64_t b = x.dim() ? x.size(0) : 1;
    const int64_t k = x.dim() >= 2 ? x.size(1) : 1;
    const int64_t inner = b > 0 && k > 0 ? x.numel() / (b * k) : 0;
    if (count_.empty()) count_.assign(k, 0), mean_.assign(k, 0), m2_.assign(k, 0),
        min_.assign(k, std::numeric_limits<double>::infinity()), max_.assign(k, -std::numeric_limits<double>::infinity());
    if (static_cast<int64_t>(count_.size()) != k) return;  // shapes that vary in dim 1: first one wins
    const std::vector<double> v = x.to_vector<double>();
    for (int64_t c = 0; c < k; ++c) {
      double sum = 0, lo = min_[c], hi = max_[c];
      for (int64_t i = 0; i < b; ++i)
        for (int64_t j = 0; j < inner; ++j) {
          const double e = v[(i * k + c) * inner + j];
          sum += e, lo = std::min(lo, e), hi = std::max(hi, e);
        }
      const double n = static_cast<double>(b * inner), mean = n ? sum / n : 0;
      double m2 = 0;
      for (int64_t i = 0; i < b; ++i)
        for (int64_t j = 0; j < inner; ++j) {
          const double d = v[(i * k + c) * inner + j] - mean;
          m2 += d * d;
        }
      const double na = static_cast<double>(count_[c]), total = na + n;
      if (total == 0) continue;
      const double delta = mean - mean_[c];
      mean_[c] += delta * n / total;
      m2_[c] += m2 + delta * delta * na * n / total;
      count_[c] += b * inner;
      min_[c] = lo, max_[c] = hi;
    }
  }
  bool empty() const { return count_.empty() || count_[0] == 0; }
  const std::vector<double>& mean() const { return mean_; }
  std::vector<double> std() const {  // population standard deviation (torch's std over ~all values)
    std::vector<double> s;
    for (size_t c = 0; c < m2_.size(); ++c) s.push_back(count_[c] ? std::sqrt(m2_[c] / static_cast<double>(count_[c])) : 0.0);
    return s;
  }
  const std::vector<double>& min() const { return min_; }
  const std::vector<double>& max() const { return max_; }
  const std::vector<int64_t>& count() const { return count_; }

 private:
  std::vector<int64_t> count_;
  std::vector<double> mean_, m2_, min_, max_;
};

struct DecodeError {
  int64_t index = 0;
  std::string where, message;
};

struct SplitReport {
  std::string name;
  int64_t samples = 0;
  data::DatasetInfo info;
  std::optional<Shape> shape_after;  // after the split's transforms; nullopt when the size varies
  DType dtype_after = DType::F32;
  std::string transforms;            // the split's pipeline
  std::vector<int64_t> class_counts;  // class_index: samples per class; multi_hot: positives
  std::optional<double> imbalance;    // max/min class count (inf when a class has none)
  int64_t decoded = 0;               // samples in the statistics pass
  bool capped = false;               // the statistics cover only the first --max-samples
  std::string stats_transforms;      // the pipeline the statistics were computed after
  ColumnMoments input, target;       // input: per channel; target: regression/multi-hot columns
  std::optional<DecodeError> error;
};

// data.transforms without normalize (and never augment), ending in f32: what the statistics
// are computed on. Non-image inputs (features, tokens) go through nothing.
data::TransformPipeline stats_pipeline(const DataSpec& d, const data::DatasetInfo& info) {
  data::TransformPipeline p;
  if (info.input_shape.size() != 3) return p;
  for (const TransformSpec& t : d.transforms)
    if (t.type != "normalize") p.add(t.type, t.attrs);
  if (p.out_dtype(info.input_dtype) == DType::U8) p.to_float();
  return p;
}

bool fully_known(const Shape& s) {
  return std::all_of(s.begin(), s.end(), [](int64_t d) { return d >= 0; });
}

void count_classes(const data::Dataset& ds, SplitReport& r) {
  if (r.info.target_kind != data::TargetKind::class_index || r.info.num_classes <= 0) return;
  r.class_counts.assign(r.info.num_classes, 0);
  for (int64_t i = 0; i < r.samples; ++i)
    if (std::optional<int64_t> c = ds.class_of(i); c && *c >= 0 && *c < r.info.num_classes) ++r.class_counts[*c];
  if (r.class_counts.size() < 2) return;
  const auto [lo, hi] = std::minmax_element(r.class_counts.begin(), r.class_counts.end());
  r.imbalance = *lo ? static_cast<double>(*hi) / static_cast<double>(*lo) : std::numeric_limits<double>::infinity();
}

// Sample `i` through `p`, added to the statistics; a failure becomes r.error (the first only).
void decode_one(const data::Dataset& ds, const data::TransformPipeline& p, int64_t i, SplitReport& r) {
  try {
    data::Sample s = ds.get(i);
    Generator rng(0);  // the pipeline has no random steps
    Tensor x = p.empty() ? s.at(data::kInput) : p(s.at(data::kInput), rng);
    Shape one = x.shape();
    one.insert(one.begin(), 1);
    if (is_floating(x.dtype())) r.input.add(x.reshape(one));
    if (const Tensor* y = s.find(data::kTarget); y && is_floating(y->dtype())) {
      Shape ys = y->shape();
      ys.insert(ys.begin(), 1);
      r.target.add(y->reshape(ys));
    }
    ++r.decoded;
  } catch (const std::exception& e) {
    if (!r.error) r.error = DecodeError{i, ds.describe(i), e.what()};
  }
}

// The statistics pass: batches of the first `limit` samples through a DataLoader; a batch that
// fails is redone sample by sample to find (and skip) the samples that fail.
void decode_stats(const Config& cfg, const data::DatasetPtr& ds, int64_t limit, SplitReport& r) {
  const int64_t n = limit > 0 ? std::min(limit, r.samples) : r.samples;
  r.capped = n < r.samples;
  std::vector<int64_t> first(n);
  std::iota(first.begin(), first.end(), int64_t{0});
  data::DatasetPtr part = n == r.samples ? ds : data::subset(ds, first, ds->name());
  data::LoaderOptions lo;
  lo.batch_size = kStatsBatch;
  lo.workers = cfg.data.loader.workers;
  lo.transform = stats_pipeline(cfg.data, r.info);
  r.stats_transforms = lo.transform.empty() ? "none" : lo.transform.str();
  const data::TransformPipeline pipeline = lo.transform;
  data::DataLoader loader(part, lo);
  loader.start_epoch(0);
  for (;;) {
    std::optional<data::Batch> b;
    try {
      b = loader.next();
    } catch (const DataError&) {
      const int64_t k = loader.state().batch_in_epoch;
      for (int64_t i = k * kStatsBatch; i < std::min(n, (k + 1) * kStatsBatch); ++i) decode_one(*part, pipeline, i, r);
      loader.start_epoch(0, k + 1);
      continue;
    }
    if (!b) break;
    if (is_floating(b->input().dtype())) r.input.add(b->input());
    if (const Tensor* y = b->tensors.find(data::kTarget); y && is_floating(y->dtype())) r.target.add(*y);
    r.decoded += b->size();
  }
}

SplitReport inspect_split(const Config& cfg, const data::DatasetPtr& ds, int64_t max_samples) {
  SplitReport r;
  r.name = ds->name();
  r.samples = ds->size();
  r.info = ds->info();
  const data::TransformPipeline p = train::build_transforms(cfg.data, r.name == "train");
  r.transforms = p.empty() ? "none" : p.str();
  r.dtype_after = p.out_dtype(r.info.input_dtype);
  if (r.info.input_shape.size() != 3) r.shape_after = r.info.input_shape;  // the loader passes it through
  else if (fully_known(r.info.input_shape)) r.shape_after = p.out_shape(r.info.input_shape);
  count_classes(*ds, r);
  decode_stats(cfg, ds, max_samples, r);
  if (r.info.target_kind == data::TargetKind::multi_hot && !r.target.empty())
    for (size_t c = 0; c < r.target.mean().size(); ++c)
      r.class_counts.push_back(std::llround(r.target.mean()[c] * static_cast<double>(r.target.count()[c])));
  return r;
}

// ---- text -----------------------------------------------------------------------------------

std::string list(const std::vector<double>& v) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(4) << "[";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  return os.str() + "]";
}

std::string imbalance_text(const SplitReport& r) {
  const auto [lo, hi] = std::minmax_element(r.class_counts.begin(), r.class_counts.end());
  const std::string most = class_name_text(r.info.class_name(hi - r.class_counts.begin())),
                    least = class_name_text(r.info.class_name(lo - r.class_counts.begin()));
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << "imbalanced: '" << most << "' has " << *hi << " samples, '" << least
     << "' " << *lo << (*lo ? "" : " (a class without samples)");
  if (*lo) os << " (max/min " << *r.imbalance << ")";
  os << "; consider data.loader.sampler: {type: weighted_random, balanced: true}";
  return os.str();
}

void print_text(std::ostream& os, const SplitReport& r) {
  const data::DatasetInfo& in = r.info;
  os << r.name << ": " << r.samples << " samples\n"
     << "  input     " << dtype_name(in.input_dtype) << " " << shape_str(in.input_shape) << " -> "
     << dtype_name(r.dtype_after) << " " << (r.shape_after ? shape_str(*r.shape_after) : std::string("(size varies)"))
     << " after " << r.transforms << "\n";
  if (in.variable_length && !in.input_shape.empty())
    os << "  lengths   dim 0 varies, up to " << in.input_shape[0]
       << ": batches are padded to their longest sample and add input_lengths\n";
  os << "  target    " << data::target_kind_name(in.target_kind);
  if (!in.target_shape.empty()) os << " " << shape_str(in.target_shape);
  if (in.num_classes > 0) os << ", " << in.num_classes << " classes";
  os << "\n";
  if (!r.class_counts.empty()) {
    const int64_t total = std::accumulate(r.class_counts.begin(), r.class_counts.end(), int64_t{0});
    os << "  classes" << (in.target_kind == data::TargetKind::multi_hot ? " (positives in the decoded samples)" : "") << "\n";
    for (size_t c = 0; c < r.class_counts.size() && c < kClassLines; ++c)
      os << "    " << std::right << std::setw(4) << c << "  " << std::left << std::setw(16) << class_name_text(in.class_name(static_cast<int64_t>(c)))
         << std::right << std::setw(8) << r.class_counts[c] << std::fixed << std::setprecision(1) << std::setw(7)
         << (total ? 100.0 * static_cast<double>(r.class_counts[c]) / static_cast<double>(total) : 0.0) << "%\n";
    if (r.class_counts.size() > kClassLines) os << "    ... " << r.class_counts.size() - kClassLines << " more (--json lists all)\n";
  } else if (!in.class_names.empty()) {
    os << "  classes   " << in.class_names.size() << " names:";
    for (size_t c = 0; c < in.class_names.size() && c < kClassLines; ++c) {
      const std::string name = class_name_text(in.class_names[c]);  // quoted when a space would hide it
      os << " " << (name.empty() || name.find(' ') != std::string::npos ? "'" + name + "'" : name);
    }
    os << (in.class_names.size() > kClassLines ? " ..." : "") << "\n";
  }
  if (r.imbalance) {
    if (*r.imbalance > kImbalanceRatio) os << "  " << imbalance_text(r) << "\n";
    else os << "  balanced (max/min class count " << std::fixed << std::setprecision(2) << *r.imbalance << ")\n";
  }
  const std::string over = std::to_string(r.decoded) + " samples" + (r.capped ? " (the first; --max-samples 0 for all)" : "");
  if (!r.input.empty()) {
    os << "  input mean " << list(r.input.mean()) << " std " << list(r.input.std()) << "  per "
       << (in.input_shape.size() == 3 ? "channel" : "feature") << ", after " << r.stats_transforms << ", over " << over << "\n";
    if (r.name == "train" && in.input_shape.size() == 3)
      os << "    for data.transforms: {type: normalize, mean: " << list(r.input.mean()) << ", std: " << list(r.input.std()) << "}\n";
  }
  if (!r.target.empty() && in.target_kind == data::TargetKind::regression)
    os << "  target mean " << list(r.target.mean()) << " std " << list(r.target.std()) << " min " << list(r.target.min())
       << " max " << list(r.target.max()) << " over " << over << "\n";
  if (r.error) {  // DataErrors name the file already; other failures get describe(i) in front
    os << "  decode error: sample " << r.error->index << ": ";
    if (r.error->message.find(r.error->where) == std::string::npos) os << r.error->where << ": ";
    os << r.error->message << "\n";
  }
}

// ---- JSON -----------------------------------------------------------------------------------

json::Object moments_json(const ColumnMoments& m) {
  return json::Object().add("mean", json::Array::of(m.mean())).add("std", json::Array::of(m.std())).add("min", json::Array::of(m.min())).add("max", json::Array::of(m.max()));
}

json::Object split_json(const SplitReport& r) {
  const data::DatasetInfo& in = r.info;
  json::Object o;
  o.add("split", r.name).add("samples", r.samples)
      .add("input", json::Object().add("shape", json::Array::of(in.input_shape)).add("dtype", dtype_name(in.input_dtype))
                          .add("variable_length", in.variable_length))
      .add("transformed", json::Object().add("shape", r.shape_after ? json::Array::of(*r.shape_after) : json::Array())
                              .add("size_varies", !r.shape_after).add("dtype", dtype_name(r.dtype_after))
                              .add("transforms", r.transforms))
      .add("target", json::Object().add("kind", data::target_kind_name(in.target_kind)).add("shape", json::Array::of(in.target_shape))
                         .add("num_classes", in.num_classes))
      .add("class_names", json::Array::of(in.class_names));
  if (!r.class_counts.empty()) {
    json::Array classes;
    for (size_t c = 0; c < r.class_counts.size(); ++c)
      classes.push(json::Object().add("index", static_cast<int64_t>(c)).add("name", in.class_name(static_cast<int64_t>(c)))
                       .add("count", r.class_counts[c]));
    o.add("classes", classes);
  }
  if (r.imbalance) {
    o.add("imbalance_ratio", *r.imbalance).add("imbalanced", *r.imbalance > kImbalanceRatio);
    if (*r.imbalance > kImbalanceRatio) o.add("imbalance_hint", imbalance_text(r));
  }
  o.add("decoded_samples", r.decoded).add("decoded_first_only", r.capped).add("stats_transforms", r.stats_transforms);
  if (!r.input.empty()) o.add("input_stats", moments_json(r.input));
  if (!r.target.empty() && in.target_kind == data::TargetKind::regression) o.add("target_stats", moments_json(r.target));
  if (r.error)
    o.add("decode_error", json::Object().add("index", r.error->index).add("where", r.error->where).add("message", r.error->message));
  return o;
}

std::function<int()> setup_data(CLI::App& sub) {
  auto a = std::make_shared<DataArgs>();
  sub.add_option("config", a->config, "recipe YAML file")->required();
  sub.add_option("overrides", a->overrides, "key=value overrides, e.g. data.val_size=0");
  sub.add_option("--split", a->split, "only this split (train, val or test)")->check(CLI::IsMember({"train", "val", "test"}));
  sub.add_option("--max-samples", a->max_samples, "samples decoded per split for the statistics (0 = all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub.add_flag("--json", a->json, "print the report as one JSON object");
  return [a]() -> int {
    Config cfg = load_config(a->config, a->overrides);
    const data::Splits splits = train::open_data(cfg);
    std::vector<data::DatasetPtr> chosen;
    for (const char* s : {"train", "val", "test"})
      if ((a->split.empty() || a->split == s) && splits.get(s)) chosen.push_back(splits.get(s));
    if (chosen.empty()) throw std::invalid_argument("the config has no " + a->split + " split");
    std::vector<SplitReport> reports;
    for (const data::DatasetPtr& ds : chosen) reports.push_back(inspect_split(cfg, ds, a->max_samples));
    const bool failed = std::any_of(reports.begin(), reports.end(), [](const SplitReport& r) { return r.error.has_value(); });
    if (a->json) {
      json::Array js;
      for (const SplitReport& r : reports) js.push(split_json(r));
      std::cout << json::Object().add("config", cfg.source_path).add("format", cfg.data.format).add("root", cfg.data.root)
                       .add("splits", js).add("ok", !failed).str() << "\n";
    } else {
      std::cout << cfg.source_path << ": data.format " << cfg.data.format
                << (cfg.data.root.empty() ? std::string() : " (root " + cfg.data.root + ")") << "\n";
      for (const SplitReport& r : reports) {
        std::cout << "\n";
        print_text(std::cout, r);
      }
    }
    return failed ? kExitFailure : kExitOk;
  };
}

}  // namespace

DL_REGISTER_COMMAND(data, "data",
                    "Describe a recipe's data: samples, classes and balance, shapes, mean/std for normalize, "
                    "decode errors (no training)",
                    setup_data);

}  // namespace dl::cli
