// Evaluation of a model on a data split: its own function, used by the training loop (val
// during training, test at the end) and by `dltool eval`, which builds only a model, the data
// and the loss (no optimizer, scheduler or run directory).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/run/setup.h"
#include "datasets/dataloader.h"
#include "exporters/checkpoint.h"
#include "engine/dist/process_group.h"
#include "engine/tensor/device.h"

namespace dl::train {

struct EvalResult {
  std::string split;
  int64_t samples = 0;
  double loss = 0;
  double accuracy = 0;
  std::optional<double> top_k_accuracy;
  int top_k = 0;
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
  std::vector<double> per_class_accuracy;
  // Per class c from `confusion` (add_class_metrics), as sklearn's precision_recall_fscore_support
  // with labels=range(C), zero_division=0: precision = tp / (predicted c), recall = tp / (true c),
  // f1 = 2pr / (p + r), 0 where a denominator is 0; support = true samples of c.
  std::vector<double> precision, recall, f1;
  std::vector<int64_t> support;
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;  // unweighted means over the C classes
  std::vector<std::string> class_names;  // the split's info().class_names (index order; may be empty)
  std::optional<double> knn_accuracy;  // metrics: [knn_accuracy]
  // metrics: [bits_per_token]: the mean cross-entropy of the class-index targets under the
  // softmax of the outputs, in bits (nats / ln 2); for a character language model, bits per
  // character. Lower is better.
  std::optional<double> bits_per_token;
  // Regression targets (float): mean absolute error, root mean squared error and R^2 over every
  // target value (R^2 averaged over the target's columns, as sklearn's r2_score). Class-index
  // targets have accuracy instead, and no regression metrics.
  bool regression = false;
  std::optional<double> mae, rmse, r2;
  // Sequence targets (a CTC loss): the fraction of samples whose greedy CTC decoding
  // (ctc_greedy_decode of the output [N, T, C] over all T steps) equals their label sequence.
  // No accuracy, confusion or per-class metrics then.
  bool sequence = false;
  std::optional<double> sequence_accuracy;
};

// Fills precision, recall, f1, support and the macro averages of `r` from r.confusion.
void add_class_metrics(EvalResult& r);

// The value of metric `name` ("loss", "accuracy", "top5", "knn_accuracy", "sequence_accuracy") in `r`; nullopt
// when `r` does not have it.
std::optional<double> metric_value(const EvalResult& r, const std::string& name);
// True for the metrics where lower is better (loss, bits_per_token, mae, rmse): what
// checkpoint.best's mode `auto` minimises.
bool lower_is_better(const std::string& metric);

struct EvalOptions {
  std::string split;             // "val" or "test": the name in the result
  int64_t num_classes = 0;       // rows/columns of the confusion matrix
  int top_k = 0;                 // > 1: also count top-k hits
  bool loss_is_sum = false;      // the loss's reduction is "sum" (else the mean per sample)
  bool knn = false;              // also compute knn_accuracy of the outputs as embeddings
  bool bits = false;             // also compute bits_per_token
  bool target_is_input = false;  // loss.target: input (autoencoders): the labels are the inputs
  // A sequence loss (ctc_loss): the batches' padded targets with target_lengths feed the loss,
  // and sequence_accuracy decodes with this blank label.
  std::optional<int64_t> ctc_blank;
  Device device;                 // where the model runs
  std::optional<DType> autocast = std::nullopt;  // train.precision bf16/fp16: the forward runs under autocast (engine/amp)
  data::LoaderOptions loader;    // batches of the split (no shuffling)
  // Data-parallel: every rank evaluates samples rank, rank + world, ... (no padding, so nothing is
  // counted twice) and the sums behind every metric are added over the ranks: each rank returns
  // the result of the whole split. Null or a world of one: the whole split here.
  dist::ProcessGroup* group = nullptr;
  // Keep the loss sum and the predictions on the device until the split is done, and defer the
  // loss ops' target checks to that read (engine/tensor/host_reads.h). Default: on for CUDA.
  // The results are the same bits either way; the CPU tests turn it on.
  std::optional<bool> defer_host_reads;
};

// Runs `model` in eval mode without grad over `data`, restoring its training mode after.
// `loss_nodes`: what the loss reads (loss_nodes(cfg.loss)).
EvalResult evaluate(GraphModel& model, const LossFn& loss, const std::vector<std::string>& loss_nodes,
                    std::shared_ptr<const data::Dataset> data, const EvalOptions& options);

// Leave-one-out 1-nearest-neighbour accuracy: the fraction of rows of `embeddings` [N, D]
// (float, any device) whose nearest other row (Euclidean; the lower index on a tie) has the
// same label. Distances are computed in row chunks of at most ~4M entries (16 MB), never as
// one N x N matrix. NaN when N < 2.
double knn_accuracy(const Tensor& embeddings, const std::vector<int64_t>& labels);

// How many of the N sequences of `output` [N, T, C] (log-probabilities, batch first) decode
// greedily (ctc_greedy_decode, every input length T, `blank`) to exactly their labels:
// targets[b, :lengths[b]] of the padded i64 `targets` [N, S] (lengths undefined: all S).
int64_t count_sequences_right(const Tensor& output, const Tensor& targets, const Tensor& lengths, int64_t blank);

// The options a config asks for on `split` ("val"/"test").
EvalOptions eval_options(const Config& cfg, const std::string& split, int64_t num_classes);

// `dltool eval`: the config's data split and model with `weights` (strict, as load_state_dict)
// loaded from `path`; nothing else of a training run is built.
EvalResult evaluate_weights(const Config& cfg, const StateDict& weights, const std::string& path,
                            const std::string& split);

}  // namespace dl::train
