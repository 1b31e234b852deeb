// CPU embedding kernels (kernels/embedding.h): row copies, the bucketed deterministic weight
// gradient and max_norm renormalisation.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/embedding.h"

namespace dl::cpu {
namespace {

int64_t rows_grain(int64_t d) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(d, 1)); }

template <class T>
void fwd_impl(const Tensor& weight, const Tensor& indices, Tensor& out) {
  const int64_t d = weight.size(1);
  const T* w = weight.data<T>();
  const int64_t* idx = indices.data<int64_t>();
  T* o = out.data<T>();
  parallel_for(indices.numel(), rows_grain(d), [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) std::memcpy(o + k * d, w + idx[k] * d, static_cast<size_t>(d) * sizeof(T));
  });
}

template <class T>
void bwd_impl(const Tensor& gy, const Tensor& indices, int64_t padding_idx, Tensor& grad_weight) {
  const int64_t v_count = grad_weight.size(0), d = grad_weight.size(1), n = indices.numel();
  const int64_t* idx = indices.data<int64_t>();
  const T* g = gy.data<T>();
  T* gw = grad_weight.data<T>();
  // Counting sort of the positions by index (stable): the positions of row v are
  // order[start[v] .. start[v + 1]), ascending.
  std::vector<int64_t> start(static_cast<size_t>(v_count) + 1, 0), order(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) ++start[idx[k] + 1];
  for (int64_t v = 0; v < v_count; ++v) start[v + 1] += start[v];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t k = 0; k < n; ++k) order[fill[idx[k]]++] = k;
  }
  parallel_for(v_count, rows_grain(d), [&](int64_t v0, int64_t v1) {
    for (int64_t v = v0; v < v1; ++v) {
      T* row = gw + v * d;
      std::fill(row, row + d, T(0));
      if (v == padding_idx) continue;
      for (int64_t p = start[v]; p < start[v + 1]; ++p) {
        const T* src = g + order[p] * d;
        for (int64_t j = 0; j < d; ++j) row[j] += src[j];
      }
    }
  });
}

template <class T>
double row_norm(const T* row, int64_t d, double p) {
  double acc = 0.0;
  if (std::isinf(p)) {
    for (int64_t j = 0; j < d; ++j) acc = std::max(acc, std::abs(static_cast<double>(row[j])));
    return acc;
  }
  if (p == 2.0) {
    for (int64_t j = 0; j < d; ++j) acc += static_cast<double>(row[j]) * static_cast<double>(row[j]);
    return std::sqrt(acc);
  }
  if (p == 1.0) {
    for (int64_t j = 0; j < d; ++j) acc += std::abs(static_cast<double>(row[j]));
    return acc;
  }
  for (int64_t j = 0; j < d; ++j) acc += std::pow(std::abs(static_cast<double>(row[j])), p);
  return std::pow(acc, 1.0 / p);
}

template <class T>
void renorm_impl(Tensor& weight, const Tensor& indices, double max_norm, double norm_type) {
  const int64_t d = weight.size(1);
  const int64_t* idx = indices.data<int64_t>();
  std::vector<int64_t> rows(idx, idx + indices.numel());
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  T* w = weight.data<T>();
  parallel_for(static_cast<int64_t>(rows.size()), rows_grain(d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* row = w + rows[r] * d;
      const double norm = row_norm(row, d, norm_type);
      if (norm <= max_norm) continue;
      const T scale = static_cast<T>(max_norm / (norm + 1e-7));
      for (int64_t j = 0; j < d; ++j) row[j] *= scale;
    }
  });
}

void cpu_embedding_fwd(const Tensor& weight, const Tensor& indices, Tensor& out) {
  DL_DISPATCH_FLOAT(weight.dtype(), "embedding", [&] { fwd_impl<scalar_t>(weight, indices, out); });
}

void cpu_embedding_bwd(const Tensor& gy, const Tensor& indices, int64_t padding_idx, Tensor& grad_weight) {
  DL_DISPATCH_FLOAT(gy.dtype(), "embedding backward",
                    [&] { bwd_impl<scalar_t>(gy, indices, padding_idx, grad_weight); });
}

void cpu_embedding_renorm(Tensor& weight, const Tensor& indices, double max_norm, double norm_type) {
  DL_DISPATCH_FLOAT(weight.dtype(), "embedding_renorm_",
                    [&] { renorm_impl<scalar_t>(weight, indices, max_norm, norm_type); });
}

}  // namespace

DL_REGISTER_KERNEL(embedding_fwd_stub, CPU, cpu_embedding_fwd);
DL_REGISTER_KERNEL(embedding_bwd_stub, CPU, cpu_embedding_bwd);
DL_REGISTER_KERNEL(embedding_renorm_stub, CPU, cpu_embedding_renorm);

}  // namespace dl::cpu
