// Reduction kernel stubs. Every reduction here has a fixed evaluation order that does not
// depend on the number of threads (each output is produced by one thread; a single-output sum
// is split into fixed 4096-element blocks combined in order), so results are bit-identical at
// any OMP_NUM_THREADS. Accumulation is in double for f32 inputs.
#pragma once
#include "engine/dispatch.h"
#include "engine/tensor/tensor.h"

namespace dl {

// x viewed as [outer, reduce, inner] (contiguous): out[o, i] = sum_r x[o, r, i].
using sum_fn = void (*)(const Tensor& x, int64_t outer, int64_t reduce, int64_t inner, Tensor& out);
DL_DECLARE_STUB(sum_stub, sum_fn);

}  // namespace dl
