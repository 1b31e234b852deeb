// data.format: fashion_strips — sequences of IDX images side by side (a CTC / CRNN task): strip i
// holds 1 to max_len images of the IDX file left to right in a zero-padded u8 [C, H, W * max_len]
// input, and its target is their classes, i64 [L] (L varies: collate pads the targets and adds
// `target_lengths`).
//
// The strips are built deterministically from (seed, split, number of images) by plan_strips,
// whose few lines a PyTorch script can reproduce exactly (tests/fixtures/gen_strips.py does):
//   rng = SplitMix64 with state seed ^ (stream << 32)   (stream: train 0, val 1, test 2)
//   perm = [0, 1, ..., M - 1], used up
//   for each strip: L = 1 + rng() % max_len; then L times: when perm is used up, shuffle it
//   (Fisher-Yates, j = M - 1 down to 1, swap perm[j] and perm[rng() % (j + 1)]) and start
//   again at its front; take its next index.
// So every image is used once before any is used again.
// Validation: `holdout: N` keeps the last N images of the training file out of the training
// strips and builds the val strips (stream 1) from them alone, indices counted from the first
// held-out image. (data.val_size carves the last strips instead: each image then appears in
// about max_len / 2 + 1/2 strips, so val strips would reuse training images.)
#pragma once
#include <cstdint>
#include <vector>

namespace dl::data {

struct StripPlan {
  std::vector<int64_t> offsets;  // [num_strips + 1]: strip i uses images[offsets[i] .. offsets[i + 1])
  std::vector<int64_t> images;   // image indices into the IDX file, strip after strip
};

// std::invalid_argument when num_images < 1, num_strips < 0 or max_len < 1.
StripPlan plan_strips(int64_t num_images, int64_t num_strips, int64_t max_len, uint64_t seed, uint64_t stream);

}  // namespace dl::data
