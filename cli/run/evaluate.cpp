#include "cli/run/evaluate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "cli/run/trainer.h"
#include "engine/amp/autocast.h"
#include "engine/autograd/autograd.h"
#include "engine/ops.h"
#include "engine/tensor/host_reads.h"
#include "cli/run/checkpointing.h"

namespace dl::train {

EvalOptions eval_options(const Config& cfg, const std::string& split, int64_t num_classes) {
  EvalOptions o;
  o.split = split;
  o.num_classes = num_classes;
  for (const MetricSpec& m : cfg.metrics) {
    if (m.top_k > 1) o.top_k = static_cast<int>(m.top_k);
    if (m.type == "knn_accuracy") o.knn = true;
    if (m.type == "bits_per_token") o.bits = true;
  }
  auto r = cfg.loss.attrs.find("reduction");
  o.loss_is_sum = r != cfg.loss.attrs.end() && std::get<std::string>(r->second) == "sum";
  o.target_is_input = cfg.loss.target == "input";
  if (nn::loss_def(cfg.loss.type).sequence_target) o.ctc_blank = attr_int(cfg.loss.attrs, "blank");
  o.device = Device::parse(cfg.train.device);
  o.loader = loader_options(cfg, /*training=*/false);
  return o;
}

std::optional<double> metric_value(const EvalResult& r, const std::string& name) {
  if (name == "loss") return r.loss;
  if (name == "accuracy") return r.regression || r.sequence ? std::nullopt : std::optional<double>(r.accuracy);
  if (name == "sequence_accuracy") return r.sequence_accuracy;
  if (name == "mae") return r.mae;
  if (name == "rmse") return r.rmse;
  if (name == "r2") return r.r2;
  if (name == "knn_accuracy") return r.knn_accuracy;
  if (name == "bits_per_token") return r.bits_per_token;
  if (r.top_k_accuracy && name == "top" + std::to_string(r.top_k)) return r.top_k_accuracy;
  return std::nullopt;
}

bool lower_is_better(const std::string& metric) {
  return metric == "loss" || metric == "bits_per_token" || metric == "mae" || metric == "rmse";
}

int64_t count_sequences_right(const Tensor& output, const Tensor& targets, const Tensor& lengths, int64_t blank) {
  if (output.dim() != 3 || targets.dim() != 2 || targets.size(0) != output.size(0))
    throw std::invalid_argument("sequence_accuracy: expected outputs [N, T, C] and padded targets [N, S], got " +
                                shape_str(output.shape()) + " and " + shape_str(targets.shape()));
  const int64_t n = output.size(0), s = targets.size(1);
  const Tensor input_lengths = full({n}, static_cast<double>(output.size(1)), TensorOptions{}.with_dtype(DType::I64));
  const auto decoded = ctc_greedy_decode(output.transpose(0, 1), input_lengths.to(output.device()), blank);
  const std::vector<int64_t> tg = targets.to(Device::cpu()).contiguous().to_vector<int64_t>();
  const std::vector<int64_t> len = lengths.defined() ? lengths.to(Device::cpu()).contiguous().to_vector<int64_t>()
                                                     : std::vector<int64_t>(static_cast<size_t>(n), s);
  int64_t right = 0;
  for (int64_t b = 0; b < n; ++b) {
    const auto& d = decoded[static_cast<size_t>(b)];
    const auto first = tg.begin() + b * s;
    right += std::equal(d.begin(), d.end(), first, first + std::clamp<int64_t>(len[static_cast<size_t>(b)], 0, s));
  }
  return right;
}

double knn_accuracy(const Tensor& embeddings, const std::vector<int64_t>& labels) {
  const int64_t n = embeddings.dim() ? embeddings.size(0) : 0;
  if (static_cast<size_t>(n) != labels.size())
    throw std::invalid_argument("knn_accuracy: " + std::to_string(n) + " embeddings but " +
                                std::to_string(labels.size()) + " labels");
  if (n < 2) return std::nan("");
  NoGradGuard ng;
  const Tensor e = (embeddings.dim() == 2 ? embeddings : embeddings.reshape({n, -1})).to(DType::F32).contiguous();
  // |a - b|^2 = |a|^2 - 2 a.b + |b|^2, and |a|^2 is the same along a row of anchors a: the
  // nearest b minimises |b|^2 - 2 a.b. One [rows, n] block of a.b at a time (<= 4M floats).
  const std::vector<float> sq = sum(mul(e, e), {1}).to_vector<float>();  // |b|^2 [n]
  const Tensor et = e.t();
  const int64_t rows = std::max<int64_t>(1, (int64_t{1} << 22) / n);
  int64_t hits = 0;
  for (int64_t start = 0; start < n; start += rows) {
    const int64_t c = std::min(rows, n - start);
    const std::vector<float> dot = mm(e.narrow(0, start, c), et).to_vector<float>();  // [c, n]
    for (int64_t r = 0; r < c; ++r) {
      const int64_t i = start + r;
      const float* d = dot.data() + r * n;
      int64_t best = -1;
      float best_d = 0;
      for (int64_t j = 0; j < n; ++j) {
        if (j == i) continue;
        const float dist = sq[static_cast<size_t>(j)] - 2.0f * d[j];
        if (best < 0 || dist < best_d) {
          best = j;
          best_d = dist;
        }
      }
      hits += labels[static_cast<size_t>(best)] == labels[static_cast<size_t>(i)];
    }
  }
  return static_cast<double>(hits) / static_cast<double>(n);
}

namespace {

// Class-index labels per position: outputs [n, C, d1, ...] and labels [n, d1, ...] (the
// K-dimensional form of cross_entropy), not one label per sample.
bool per_position_labels(const Tensor& logits, const Tensor& labels) {
  if (labels.dim() < 1 || logits.dim() != labels.dim() + 1 || logits.size(0) != labels.size(0)) return false;
  for (int64_t d = 1; d < labels.dim(); ++d)
    if (logits.size(d + 1) != labels.size(d)) return false;
  return labels.dim() > 1;
}

// Running sums for the regression metrics, per target column.
struct RegressionSums {
  int64_t count = 0;  // rows
  std::vector<double> abs_err, sq_err, sum_y, sum_y2;

  void add(const Tensor& output, const Tensor& target) {
    const int64_t n = target.dim() ? target.size(0) : 1;
    const int64_t k = n ? target.numel() / n : 0;
    if (output.numel() != target.numel())
      throw std::invalid_argument("the model outputs " + shape_str(output.shape()) + " for targets " +
                                  shape_str(target.shape()) + " (a regression needs one output per target value)");
    const std::vector<double> p = output.to(DType::F64).to_vector<double>(), y = target.to(DType::F64).to_vector<double>();
    if (abs_err.empty()) abs_err.assign(k, 0), sq_err.assign(k, 0), sum_y.assign(k, 0), sum_y2.assign(k, 0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) {
        const double t = y[i * k + j], e = p[i * k + j] - t;
        abs_err[j] += std::fabs(e), sq_err[j] += e * e, sum_y[j] += t, sum_y2[j] += t * t;
      }
    count += n;
  }

  void finish(EvalResult& r) const {
    double ae = 0, se = 0, r2 = 0;
    const double n = static_cast<double>(count);
    for (size_t j = 0; j < abs_err.size(); ++j) {
      ae += abs_err[j], se += sq_err[j];
      const double sst = sum_y2[j] - sum_y[j] * sum_y[j] / n;
      r2 += sst > 0 ? 1.0 - sq_err[j] / sst : 0.0;
    }
    const double values = n * static_cast<double>(abs_err.size());
    r.regression = true;
    r.mae = ae / values;
    r.rmse = std::sqrt(se / values);
    r.r2 = r2 / static_cast<double>(abs_err.size());
  }
};

// Samples rank, rank + world, ... of a split in order: one rank's share of a sharded evaluation.
class StridedSampler final : public data::Sampler {
 public:
  StridedSampler(int64_t n, int64_t rank, int64_t world) : n_(n), rank_(rank), world_(world) {}
  std::vector<int64_t> epoch_indices(uint64_t, int64_t) const override {
    std::vector<int64_t> v;
    for (int64_t i = rank_; i < n_; i += world_) v.push_back(i);
    return v;
  }
  int64_t length() const override { return n_ > rank_ ? (n_ - rank_ + world_ - 1) / world_ : 0; }

 private:
  int64_t n_, rank_, world_;
};

// A host tensor's values as int64, without counting as a read of the device (host_reads.h).
std::vector<int64_t> host_int64(const Tensor& t) {
  const Tensor c = t.dtype() == DType::I64 ? t.contiguous() : t.to(DType::I64).contiguous();
  const int64_t* p = c.data<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

std::string pack_doubles(const std::vector<double>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double));
}
std::vector<double> unpack_doubles(const std::string& s) {
  std::vector<double> v(s.size() / sizeof(double));
  std::memcpy(v.data(), s.data(), v.size() * sizeof(double));
  return v;
}

// Every rank's `mine` added elementwise (a shorter vector counts as zeros past its end: a rank
// whose shard had no regression rows has no per-column sums).
std::vector<double> sum_over_ranks(dist::ProcessGroup& g, const std::vector<double>& mine) {
  std::vector<double> total;
  for (const std::string& bytes : g.allgather_bytes(pack_doubles(mine))) {
    const std::vector<double> v = unpack_doubles(bytes);
    if (v.size() > total.size()) total.resize(v.size(), 0.0);
    for (size_t i = 0; i < v.size(); ++i) total[i] += v[i];
  }
  return total;
}

// knn_accuracy needs every sample's embedding: the shards' rows, concatenated in rank order.
void gather_embeddings(dist::ProcessGroup& g, Tensor& emb, std::vector<int64_t>& labels) {
  const int64_t d = emb.defined() && emb.dim() == 2 ? emb.size(1) : 0;
  std::vector<double> mine{static_cast<double>(d)};
  if (d > 0) {
    const std::vector<float> e = emb.to(Device::cpu()).contiguous().to_vector<float>();
    mine.insert(mine.end(), e.begin(), e.end());
  }
  mine.insert(mine.end(), labels.begin(), labels.end());
  std::vector<float> rows;
  std::vector<int64_t> all_labels;
  int64_t dim = 0;
  for (const std::string& bytes : g.allgather_bytes(pack_doubles(mine))) {
    const std::vector<double> v = unpack_doubles(bytes);
    const int64_t rd = static_cast<int64_t>(v.at(0));
    if (rd == 0) continue;  // an empty shard
    dim = rd;
    const size_t n = (v.size() - 1) / static_cast<size_t>(rd + 1);
    rows.insert(rows.end(), v.begin() + 1, v.begin() + 1 + static_cast<std::ptrdiff_t>(n * static_cast<size_t>(rd)));
    for (size_t i = 1 + n * static_cast<size_t>(rd); i < v.size(); ++i) all_labels.push_back(static_cast<int64_t>(v[i]));
  }
  labels = std::move(all_labels);
  emb = dim > 0 ? from_vector(rows, {static_cast<int64_t>(labels.size()), dim}) : Tensor();
}

}  // namespace

EvalResult evaluate(GraphModel& model, const LossFn& loss_fn, const std::vector<std::string>& loss_nodes,
                    std::shared_ptr<const data::Dataset> ds,
                    const EvalOptions& o) {
  EvalResult r;
  r.split = o.split;
  r.top_k = o.top_k;
  const int64_t C = o.num_classes;
  r.confusion.assign(C, std::vector<int64_t>(C, 0));
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  const std::vector<std::string> loader_classes = ds->info().class_names;
  const bool sharded = o.group && o.group->world_size() > 1;
  data::LoaderOptions lo = o.loader;
  if (sharded) lo.sampler = std::make_shared<const StridedSampler>(ds->size(), o.group->rank(), o.group->world_size());
  data::DataLoader loader(std::move(ds), std::move(lo));
  loader.start_epoch(0);
  double loss_sum = 0, nats_sum = 0;
  int64_t correct = 0, topk_hits = 0, positions = 0, sequences_right = 0;  // positions: labels counted (samples x positions)
  std::vector<Tensor> embeddings;  // o.knn: every batch's output [n, D]
  std::vector<int64_t> all_labels;
  RegressionSums reg;
  // On the device until the loop ends (one read for the split, not one per batch): the sum of
  // every batch's loss (times its sample count for mean losses) and every batch's predictions.
  // The loss ops' target checks wait for that read too.
  DeferChecksGuard defer_checks(o.defer_host_reads.value_or(o.device.is_cuda()));
  Tensor loss_acc;
  std::vector<Tensor> preds;
  std::vector<int64_t> pred_labels;  // the labels the predictions are compared with
  while (auto b = loader.next()) {
    const TensorList x = batch_model_inputs(model, *b, o.device);
    const LossLabels host_y = loss_labels(*b, o.target_is_input);  // the batch's own (host) labels
    const LossLabels loss_y = host_y.to(o.device);
    const Tensor& y = loss_y.labels;
    std::vector<Tensor> outs;
    try {
      amp::AutocastGuard ac(o.autocast);
      outs = model.forward_nodes(x, loss_nodes);
    } catch (const OutOfMemoryError& e) {
      throw e.with_context("evaluating the " + o.split + " split, a batch of " + std::to_string(b->size()) +
                           " samples (evaluation batches hold max(data.loader.batch_size, 500))");
    }
    for (Tensor& t : outs)  // metrics and the loss read f32 outputs (the loss would cast them anyway)
      if (t.dtype() == DType::F16 || t.dtype() == DType::BF16) t = t.to(DType::F32);
    const Tensor& logits = outs.front();
    const int64_t n = b->size();
    const Tensor batch_loss = loss_fn(outs, loss_y).detach().to(DType::F64);
    const Tensor weighted = o.loss_is_sum ? batch_loss : mul(batch_loss, static_cast<double>(n));
    loss_acc = loss_acc.defined() ? add(loss_acc, weighted) : weighted;
    r.samples += n;
    if (o.ctc_blank) {
      sequences_right += count_sequences_right(logits, loss_y.labels, loss_y.lengths, *o.ctc_blank);
      continue;
    }
    if (is_floating(y.dtype())) {
      reg.add(logits, y);
      continue;
    }
    // Outputs [n, C] for labels [n], or [n, C, d1, ...] for labels [n, d1, ...] (one class per
    // position, as cross_entropy takes them: a next-token model's [N, V, T]): logit c of
    // position p of sample i is lg[(i * C + c) * P + p], and every position counts as a sample
    // for accuracy, top-k, the confusion matrix and bits_per_token.
    const int64_t P = per_position_labels(logits, y) ? y.numel() / std::max<int64_t>(n, 1) : 1;
    preds.push_back(argmax(logits, 1).reshape({-1}));  // compared with the labels after the loop
    const std::vector<int64_t> lab = host_int64(host_y.labels);
    const int64_t labels = P > 1 ? n * P : n;
    pred_labels.insert(pred_labels.end(), lab.begin(), lab.begin() + labels);
    positions += labels;
    if (o.top_k > 1 || o.bits) {
      std::vector<float> lg = logits.to_vector<float>();
      const int64_t classes = logits.size(1);
      for (int64_t k = 0; k < labels; ++k) {
        const int64_t i = k / P, p = k % P;
        const float* row = lg.data() + i * classes * P + p;  // logit c at row[c * P]
        if (lab[k] < 0 || lab[k] >= classes) {  // a label the output has no logit for: a miss
          nats_sum = std::numeric_limits<double>::infinity();
          continue;
        }
        const float target = row[lab[k] * P];
        int64_t higher = 0;
        double top = row[0], sum_exp = 0;
        for (int64_t c = 0; c < classes; ++c) higher += row[c * P] > target, top = std::max<double>(top, row[c * P]);
        topk_hits += higher < o.top_k;
        if (!o.bits) continue;
        for (int64_t c = 0; c < classes; ++c) sum_exp += std::exp(static_cast<double>(row[c * P]) - top);
        nats_sum += top + std::log(sum_exp) - static_cast<double>(target);  // -log softmax(row)[label]
      }
    }
    if (o.knn) {
      embeddings.push_back(logits.reshape({n, -1}));
      all_labels.insert(all_labels.end(), lab.begin(), lab.end());
    }
  }
  if (loss_acc.defined()) loss_sum = loss_acc.item();
  if (!preds.empty()) {
    const std::vector<int64_t> pred = cat(preds, 0).to_vector<int64_t>();
    for (size_t i = 0; i < pred.size(); ++i) {
      const int64_t t = pred_labels[i], p = pred[i];
      correct += p == t;
      if (t >= 0 && t < C && p >= 0 && p < C) ++r.confusion[t][p];
    }
  }
  if (sharded) {
    // One exchange of every sum the metrics are computed from.
    std::vector<double> v{loss_sum, nats_sum, double(r.samples), double(correct), double(topk_hits), double(positions),
                          double(sequences_right), double(reg.count)};
    for (const auto& row : r.confusion) v.insert(v.end(), row.begin(), row.end());
    for (const auto* col : {&reg.abs_err, &reg.sq_err, &reg.sum_y, &reg.sum_y2}) v.insert(v.end(), col->begin(), col->end());
    const size_t fixed = 8 + static_cast<size_t>(C * C);
    v = sum_over_ranks(*o.group, v);
    auto i64 = [](double x) { return static_cast<int64_t>(std::llround(x)); };
    loss_sum = v[0], nats_sum = v[1], r.samples = i64(v[2]), correct = i64(v[3]), topk_hits = i64(v[4]);
    positions = i64(v[5]), sequences_right = i64(v[6]), reg.count = i64(v[7]);
    for (int64_t t = 0; t < C; ++t)
      for (int64_t p = 0; p < C; ++p) r.confusion[t][p] = i64(v[8 + static_cast<size_t>(t * C + p)]);
    const size_t k = (v.size() - fixed) / 4;
    std::vector<double>* cols[] = {&reg.abs_err, &reg.sq_err, &reg.sum_y, &reg.sum_y2};
    for (size_t c = 0; c < 4; ++c) cols[c]->assign(v.begin() + static_cast<std::ptrdiff_t>(fixed + c * k),
                                                  v.begin() + static_cast<std::ptrdiff_t>(fixed + (c + 1) * k));
    if (o.knn) {
      Tensor emb = embeddings.empty() ? Tensor() : cat(embeddings, 0);
      gather_embeddings(*o.group, emb, all_labels);
      embeddings.assign(emb.defined() ? 1 : 0, emb);
    }
  }
  if (reg.count > 0) reg.finish(r);
  if (o.ctc_blank) {
    r.sequence = true;
    r.sequence_accuracy = r.samples ? static_cast<double>(sequences_right) / static_cast<double>(r.samples) : 0.0;
  }
  if (o.knn && !embeddings.empty()) r.knn_accuracy = knn_accuracy(cat(embeddings, 0), all_labels);
  if (was_training) model.train();
  r.loss = r.samples ? loss_sum / static_cast<double>(r.samples) : 0.0;
  r.accuracy = positions ? static_cast<double>(correct) / static_cast<double>(positions) : 0.0;
  if (o.top_k > 1)
    r.top_k_accuracy = static_cast<double>(topk_hits) / std::max<double>(1.0, static_cast<double>(positions));
  if (o.bits && positions) r.bits_per_token = nats_sum / static_cast<double>(positions) / std::log(2.0);
  for (int64_t c = 0; c < C; ++c) {
    int64_t total = 0;
    for (int64_t p = 0; p < C; ++p) total += r.confusion[c][p];
    r.per_class_accuracy.push_back(total ? static_cast<double>(r.confusion[c][c]) / static_cast<double>(total) : 0.0);
  }
  add_class_metrics(r);
  r.class_names = loader_classes;
  return r;
}

void add_class_metrics(EvalResult& r) {
  const size_t C = r.confusion.size();
  r.precision.assign(C, 0), r.recall.assign(C, 0), r.f1.assign(C, 0), r.support.assign(C, 0);
  for (size_t c = 0; c < C; ++c) {
    int64_t predicted = 0;
    for (size_t t = 0; t < C; ++t) r.support[c] += r.confusion[c][t], predicted += r.confusion[t][c];
    const double tp = static_cast<double>(r.confusion[c][c]);
    const double p = predicted ? tp / static_cast<double>(predicted) : 0.0;
    const double rc = r.support[c] ? tp / static_cast<double>(r.support[c]) : 0.0;
    r.precision[c] = p, r.recall[c] = rc, r.f1[c] = p + rc > 0 ? 2 * p * rc / (p + rc) : 0.0;
  }
  auto mean = [&](const std::vector<double>& v) { return C ? std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(C) : 0.0; };
  r.macro_precision = mean(r.precision), r.macro_recall = mean(r.recall), r.macro_f1 = mean(r.f1);
}

EvalResult evaluate_weights(const Config& cfg, const StateDict& weights, const std::string& path,
                            const std::string& split) {
  set_num_threads(cfg.train.threads);
  const Device device = Device::parse(cfg.train.device);
  if (device.is_cuda() && !cuda_available())
    throw std::runtime_error("train.device is '" + cfg.train.device +
                             "' but no CUDA device is available (set train.device=cpu)");
  data::Splits splits = open_data(cfg);
  data::DatasetPtr ds = splits.get(split);
  if (!ds) throw std::invalid_argument("the config has no " + split + " split");
  std::shared_ptr<GraphModel> model =
      build_model(cfg, model_data(cfg, splits.train->info()), static_cast<uint64_t>(cfg.train.seed));
  model->to(device);
  apply_weights(*model, weights, /*strict=*/true, path, cfg.source_path);
  return evaluate(*model, build_loss(cfg.loss), loss_nodes(cfg.loss), ds, eval_options(cfg, split, ds->info().num_classes));
}

}  // namespace dl::train
