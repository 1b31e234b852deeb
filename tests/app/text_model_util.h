// A tiny character language model recipe on a corpus in a TempDir, for the tests of int64
// model inputs, bits_per_token and `dltool generate` (test_text_model.cpp, test_generate.cpp).
#pragma once
#include <string>

#include "tests/support/tempdir.h"

namespace dl::test {

// Writes corpus.txt (about 2 KB of repeated lines) into `dir` and returns the recipe: windows
// of 12 characters, embedding 8 -> lstm 16 -> linear num_classes -> permute [V, T],
// cross_entropy, Adam; 6 steps, val = the last 10%, metrics accuracy and bits_per_token.
inline std::string tiny_char_lm(const TempDir& dir) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "the cat sat on mat " + std::to_string(i % 7) + "\n";
  dir.file("corpus.txt", text);
  return "data:\n"
         "  dataset: tiny\n"
         "  format: text\n"
         "  root: " + dir.path.string() + "\n"
         "  seq_len: 12\n"
         "  holdout: 0.1\n"
         "  train: {file: corpus.txt}\n"
         "  loader: {batch_size: 8, shuffle: true, drop_last: true}\n"
         "model:\n"
         "  nodes:\n"
         "    - {name: embed, type: embedding, inputs: [input], num_embeddings: num_classes, embedding_dim: 8}\n"
         "    - {name: lstm, type: lstm, hidden_size: 16, batch_first: true}\n"
         "    - {name: fc, type: linear, inputs: [lstm], out_features: num_classes}\n"
         "    - {name: logits, type: permute, dims: [0, 2, 1]}\n"
         "loss: {type: cross_entropy}\n"
         "optimizer: {type: adam, lr: 0.01}\n"
         "train: {epochs: 1, max_steps: 6, log_every: 3, eval_every: 3, seed: 0, threads: 1}\n"
         "metrics: [accuracy, bits_per_token]\n"
         "checkpoint: {best: {metric: val/bits_per_token}}\n";
}

}  // namespace dl::test
