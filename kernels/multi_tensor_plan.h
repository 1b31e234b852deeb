// Launch plan of a multi-tensor kernel (torch's multi_tensor_apply): a list of tensors is cut
// into chunks of `chunk` elements, one block per chunk, and the chunks of many tensors go into
// one launch. A launch carries at most `max_tensors` tensors' addresses and `max_blocks`
// blocks' (tensor slot, chunk) pairs in its by-value arguments (a kernel's parameters are
// limited to 4 KiB), so a long list takes several launches; a tensor whose chunks do not fit
// in one launch continues in the next one, in a new slot. Host code, tested on any machine
// (tests/engine/test_optim_fused.cpp); kernels/cuda/optim.cu launches the plans.
#pragma once
#include <cstdint>
#include <vector>

namespace dl {

struct MultiTensorLaunch {
  std::vector<int> tensors;      // slot -> index into the list
  std::vector<int> block_slot;   // block -> slot
  std::vector<int64_t> block_chunk;  // block -> chunk of that slot's tensor
};

// Tensors of 0 elements get no slot and no block.
inline std::vector<MultiTensorLaunch> plan_multi_tensor(const std::vector<int64_t>& numels, int64_t chunk,
                                                        int max_tensors, int max_blocks) {
  std::vector<MultiTensorLaunch> out;
  MultiTensorLaunch cur;
  auto flush = [&] {
    if (!cur.block_slot.empty()) out.push_back(std::move(cur));
    cur = MultiTensorLaunch();
  };
  for (size_t j = 0; j < numels.size(); ++j) {
    const int64_t chunks = (numels[j] + chunk - 1) / chunk;
    int slot = -1;
    for (int64_t c = 0; c < chunks; ++c) {
      if (slot < 0) {
        if (static_cast<int>(cur.tensors.size()) == max_tensors) flush();
        slot = static_cast<int>(cur.tensors.size());
        cur.tensors.push_back(static_cast<int>(j));
      }
      cur.block_slot.push_back(slot);
      cur.block_chunk.push_back(c);
      if (static_cast<int>(cur.block_slot.size()) == max_blocks) {
        flush();
        slot = -1;  // the rest of this tensor goes into the next launch, in a new slot
      }
    }
  }
  flush();
  return out;
}

}  // namespace dl
