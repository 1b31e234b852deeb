#include "cli/run/generate.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "cli/run/checkpointing.h"
#include "cli/run/setup.h"
#include "datasets/formats/text.h"
#include "engine/autograd/autograd.h"
#include "engine/ops.h"
#include "engine/ops/random.h"

namespace dl::train {
namespace {

constexpr const char* kUnkName = "<unk>";

// "<0xNN>" -> NN; -1 for any other name.
int hex_name_byte(const std::string& name) {
  if (name.size() != 6 || name.compare(0, 3, "<0x") != 0 || name[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = name[i];
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

TextGenerator::TextGenerator(std::shared_ptr<GraphModel> model, std::vector<std::string> vocab, bool bytes)
    : model_(std::move(model)), vocab_(std::move(vocab)), bytes_(bytes) {
  const int64_t V = static_cast<int64_t>(vocab_.size());
  if (V < 2) throw GenerateError("the vocabulary has " + std::to_string(V) + " token(s): not a text model's");
  const std::vector<ModelInput>& inputs = model_->model_inputs();
  if (inputs.size() != 1 || inputs[0].dtype != DType::I64 || inputs[0].shape.size() != 1)
    throw GenerateError("the model's input is " + std::string(dtype_name(inputs[0].dtype)) + " " +
                        shape_str(inputs[0].shape) + (inputs.size() > 1 ? " (and more inputs)" : "") +
                        ", but a next-token text model takes one sequence of int64 token ids [T]");
  seq_len_ = inputs[0].shape[0];
  const Shape& out = model_->output_shape();
  const Shape vt{V, seq_len_}, tv{seq_len_, V};
  if (out != vt && out != tv)
    throw GenerateError("the model's output per sample is " + shape_str(out) + ", but a next-token model of " +
                        std::to_string(V) + " tokens on " + std::to_string(seq_len_) + "-token windows gives " +
                        shape_str(vt) + " (logits over the vocabulary per position, as cross_entropy takes them) or " +
                        shape_str(tv));
  class_dim_first_ = out == vt;
  model_->eval();
}

std::vector<int64_t> TextGenerator::encode(const std::string& text, std::vector<std::string>* unknown) const {
  std::map<std::string, int64_t> id_of;
  for (size_t i = 1; i < vocab_.size(); ++i) id_of.emplace(vocab_[i], static_cast<int64_t>(i));
  std::vector<uint32_t> symbols;
  if (bytes_)
    for (unsigned char b : text) symbols.push_back(b);
  else
    data::decode_text_utf8(text, "--prompt", symbols);
  std::vector<int64_t> ids;
  for (uint32_t s : symbols) {
    const std::string name = data::text_token_name(s, bytes_);
    auto it = id_of.find(name);
    if (it == id_of.end() && unknown) unknown->push_back(name);
    ids.push_back(it == id_of.end() ? 0 : it->second);
  }
  return ids;
}

std::string TextGenerator::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  for (int64_t id : ids) {
    const std::string& name = vocab_.at(static_cast<size_t>(id));
    if (const int b = hex_name_byte(name); b >= 0)
      text += static_cast<char>(b);
    else
      text += name == kUnkName ? std::string("\xEF\xBF\xBD") : name;  // U+FFFD for <unk>
  }
  return text;
}

std::vector<float> TextGenerator::next_logits(const std::vector<int64_t>& context) {
  const int64_t L = static_cast<int64_t>(context.size()), V = vocab_size();
  std::vector<int64_t> window(static_cast<size_t>(seq_len_), 0);
  std::copy(context.begin(), context.end(), window.begin());
  NoGradGuard no_grad;
  const std::vector<float> out = model_->forward(from_vector(window, {1, seq_len_})).contiguous().to_vector<float>();
  std::vector<float> logits(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v)  // position L - 1 of [V, T] or [T, V]
    logits[static_cast<size_t>(v)] = out[static_cast<size_t>(class_dim_first_ ? v * seq_len_ + L - 1 : (L - 1) * V + v)];
  return logits;
}

std::vector<int64_t> TextGenerator::sample(const std::vector<int64_t>& prompt, const GenerateOptions& o) {
  if (prompt.empty()) throw GenerateError("the prompt is empty: give at least one token");
  Generator gen(o.seed);
  std::vector<int64_t> tokens = prompt, generated;
  for (int64_t step = 0; step < o.length; ++step) {
    const size_t n = std::min(tokens.size(), static_cast<size_t>(seq_len_));
    const std::vector<int64_t> context(tokens.end() - static_cast<std::ptrdiff_t>(n), tokens.end());
    const double u = static_cast<double>(gen.next_u64() >> 11) * 0x1.0p-53;  // uniform [0, 1)
    const int64_t next = pick_token(next_logits(context), o.temperature, o.top_k, u);
    tokens.push_back(next);
    generated.push_back(next);
  }
  return generated;
}

int64_t pick_token(const std::vector<float>& logits, double temperature, int64_t top_k, double u) {
  const int64_t V = static_cast<int64_t>(logits.size());
  // Ids by logit, largest first (the lower id first among ties).
  std::vector<int64_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  if (temperature <= 0) return order.front();
  const int64_t k = top_k > 0 ? std::min(top_k, V) : V;
  const double top = logits[order.front()];
  std::vector<double> weight(static_cast<size_t>(k));
  double total = 0;
  for (int64_t i = 0; i < k; ++i)
    total += weight[static_cast<size_t>(i)] = std::exp((static_cast<double>(logits[order[i]]) - top) / temperature);
  double acc = 0;
  const double target = u * total;
  for (int64_t i = 0; i < k; ++i) {
    acc += weight[static_cast<size_t>(i)];
    if (target < acc) return order[static_cast<size_t>(i)];
  }
  return order[static_cast<size_t>(k - 1)];  // rounding: u * total at the very top
}

TextGenerator load_text_generator(const Config& cfg, const StateDict& weights, const std::vector<std::string>& vocab,
                                  const std::string& path) {
  if (cfg.data.format != "text")
    throw GenerateError(path + " was trained on data.format " + cfg.data.format +
                        ", not a text corpus (data.format: text): dltool generate samples from next-token text models");
  if (vocab.empty())
    throw GenerateError(path + " holds no vocabulary (/data/classes): it was not written by a dltool training run on "
                               "data.format text");
  ModelData data;
  data.input = {std::string(kModelInput), {attr_int(cfg.data.options, "seq_len")}, DType::I64};
  data.num_classes = static_cast<int64_t>(vocab.size());
  std::shared_ptr<GraphModel> model = build_model(cfg, data, static_cast<uint64_t>(cfg.train.seed));
  apply_weights(*model, weights, /*strict=*/true, path, cfg.source_path);
  return TextGenerator(std::move(model), vocab, attr_string(cfg.data.options, "level") == "byte");
}

}  // namespace dl::train
