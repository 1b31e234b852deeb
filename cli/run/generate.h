// Sampling text from a next-token language model (`dltool generate`): a model trained on
// data.format text windows (input i64 [T] token ids, output logits [V, T] or [T, V] per sample
// over the vocabulary of V tokens) and that vocabulary (the checkpoint's class names).
//
//   TextGenerator gen(model, ckpt.class_names, /*bytes=*/false);
//   std::vector<int64_t> ids = gen.sample(gen.encode("The ", nullptr), {.length = 200, .seed = 1});
//   std::cout << gen.decode(ids);
//
// Each new token is drawn from the model's output at the last position of the context, the
// last T tokens so far (fewer at the start: right-padded with token 0, which a causal model,
// one that reads only earlier positions as an LSTM does, never sees at the positions read).
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "configs/config.h"
#include "engine/graph/model.h"
#include "exporters/checkpoint.h"  // StateDict (added by the crnn helper: generate.h did not compile)

namespace dl::train {

// The model or vocabulary is not a next-token text model's (a usage error: exit code 2).
class GenerateError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct GenerateOptions {
  int64_t length = 200;      // tokens to sample
  double temperature = 1.0;  // logits / temperature before the softmax; 0 = greedy (argmax)
  int64_t top_k = 0;         // sample among the k most likely tokens only (0 = all)
  uint64_t seed = 0;         // the same seed, model and prompt give the same text
};

class TextGenerator {
 public:
  // `vocab`: the token names in id order (data.format text: "<unk>" first, "<0xNN>" for control
  // characters and, with `bytes`, bytes >= 0x80). GenerateError when the model does not take
  // one i64 sequence [T] and give [V, T] or [T, V] with V = vocab.size() (with V == T, [V, T]).
  TextGenerator(std::shared_ptr<GraphModel> model, std::vector<std::string> vocab, bool bytes);

  // The token ids of `text` (UTF-8 code points, or bytes at byte level). Characters the
  // vocabulary lacks become <unk> (id 0) and are appended to *unknown when given.
  std::vector<int64_t> encode(const std::string& text, std::vector<std::string>* unknown) const;
  // The text of `ids`: "<0xNN>" names become that byte, <unk> U+FFFD.
  std::string decode(const std::vector<int64_t>& ids) const;
  // `options.length` tokens sampled after `prompt` (non-empty), one model run each.
  std::vector<int64_t> sample(const std::vector<int64_t>& prompt, const GenerateOptions& options);

  int64_t seq_len() const { return seq_len_; }
  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }

 private:
  // The logits [V] of the token after `context` (at most seq_len tokens).
  std::vector<float> next_logits(const std::vector<int64_t>& context);

  std::shared_ptr<GraphModel> model_;
  std::vector<std::string> vocab_;
  bool bytes_ = false;
  int64_t seq_len_ = 0;
  bool class_dim_first_ = true;  // output [V, T] (cross_entropy's class dim 1) vs [T, V]
};

// Picks a token from `logits` [V]: the argmax (the lowest id among ties) when temperature is 0,
// else a draw from softmax(logits / temperature) restricted to the top_k largest (all when
// top_k is 0 or >= V), with `u` uniform in [0, 1).
int64_t pick_token(const std::vector<float>& logits, double temperature, int64_t top_k, double u);

// The model and vocabulary of a checkpoint of `cfg` (its weights `weights` and class names):
// GenerateError when the config's data is not data.format text or the checkpoint has no
// vocabulary; the weights load strictly.
TextGenerator load_text_generator(const Config& cfg, const StateDict& weights, const std::vector<std::string>& vocab,
                                  const std::string& path);

}  // namespace dl::train
