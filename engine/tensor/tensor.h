// Tensor: a cheap, shared handle to (storage, shape, strides, offset, dtype, device) plus the
// autograd metadata. Copying a Tensor copies the handle, not the data (like torch.Tensor).
//
//   Tensor x = dl::randn({2, 3}, gen);            // f32 on cpu
//   Tensor w = dl::zeros({3, 4}).requires_grad_();
//   Tensor y = dl::matmul(x, w).relu().sum();
//   y.backward();                                  // w.grad() is now [3, 4]
//
// Views (view/reshape/transpose/permute/narrow/slice/squeeze/unsqueeze/expand) share storage.
// Ops live in engine/ops/*.h; methods here forward to them for readability.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/tensor/device.h"
#include "engine/tensor/dtype.h"
#include "engine/tensor/storage.h"

namespace dl {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 3]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

// A shape or size computation whose result does not fit in int64 (e.g. a layer of
// 99999999999 x 99999999999 weights): reported, never wrapped.
class ShapeOverflowError : public std::overflow_error {
 public:
  using std::overflow_error::overflow_error;
};
// int64 arithmetic for shapes and byte counts that throws ShapeOverflowError ("<what>
// overflows int64") instead of wrapping.
int64_t checked_add(int64_t a, int64_t b, const char* what = "a size");
int64_t checked_mul(int64_t a, int64_t b, const char* what = "a size");
// shape_numel, throwing ShapeOverflowError naming the shape when the product overflows.
int64_t checked_numel(const Shape& s);

struct Node;  // autograd graph node (engine/autograd/autograd.h)

struct TensorOptions {
  DType dtype = DType::F32;
  Device device = Device::cpu();
  bool requires_grad = false;

  TensorOptions() = default;
  TensorOptions(DType d) : dtype(d) {}                      // NOLINT: implicit on purpose
  TensorOptions(Device dev) : device(dev) {}                // NOLINT
  TensorOptions(DType d, Device dev) : dtype(d), device(dev) {}
  TensorOptions with_dtype(DType d) const { auto o = *this; o.dtype = d; return o; }
  TensorOptions with_device(Device d) const { auto o = *this; o.device = d; return o; }
  TensorOptions with_requires_grad(bool r) const { auto o = *this; o.requires_grad = r; return o; }
};

struct TensorImpl {
  Storage storage;
  Shape shape;
  Shape strides;  // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::F32;
  // autograd
  bool requires_grad = false;         // leaf flag (set by the user) or "has grad_fn"
  std::shared_ptr<TensorImpl> grad;   // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;      // the node that produced this tensor (non-leaf)
  uint32_t output_nr = 0;             // which output of grad_fn this is
  std::shared_ptr<Node> grad_accumulator;  // lazily created AccumulateGrad of a leaf
  uint64_t version = 0;               // bumped by in-place ops
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

  // ---- metadata ----
  const Shape& shape() const { return impl_->shape; }
  const Shape& sizes() const { return impl_->shape; }
  const Shape& strides() const { return impl_->strides; }
  int64_t dim() const { return static_cast<int64_t>(impl_->shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(impl_->shape); }
  int64_t offset() const { return impl_->offset; }
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->storage->device(); }
  const Storage& storage() const { return impl_->storage; }
  TensorOptions options() const { return TensorOptions(dtype(), device()); }
  bool is_contiguous() const;
  size_t element_size() const { return dtype_size(dtype()); }
  std::string str() const;  // "Tensor[2, 3] float32 cpu"

  // Raw pointer to the first element (offset applied). Checks the dtype.
  template <class T> T* data() const {
    check_dtype(dtype_of<T>::value);
    return static_cast<T*>(raw_data());
  }
  // An empty tensor may have no storage bytes (null) yet a non-zero offset (a row of a [2, 0]
  // tensor, a slice of an empty cat result): its data pointer stays null, since adding an
  // offset to null is undefined behaviour (UBSan's pointer-overflow check).
  void* raw_data() const {
    char* base = static_cast<char*>(impl_->storage->data());
    return base ? base + impl_->offset * element_size() : nullptr;
  }

  // ---- conversion ----
  Tensor contiguous() const;          // self if already contiguous
  Tensor clone() const;               // always a fresh contiguous copy (differentiable)
  Tensor to(Device d) const;          // differentiable; self if already there
  Tensor to(DType t) const;           // differentiable for float->float
  Tensor cpu() const { return to(Device::cpu()); }
  // A copy in page-locked host memory (self if already pinned): its .to(cuda) is asynchronous
  // on the device's stream. CPU tensors only; std::runtime_error in a build without CUDA or
  // without a usable GPU (as PyTorch's). Not differentiable (a data-loading step).
  Tensor pin_memory() const;
  bool is_pinned() const { return impl_->storage->pinned(); }
  Tensor detach() const;              // shares storage, no grad history
  double item() const;                // single element as double
  template <class T> std::vector<T> to_vector() const;  // copies to host, row-major
  void copy_(const Tensor& src);      // in-place copy with broadcast + dtype cast (no grad)

  // ---- autograd ----
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  Tensor& requires_grad_(bool r = true);
  bool is_leaf() const { return !impl_->grad_fn; }
  Tensor grad() const { return impl_->grad ? Tensor(impl_->grad) : Tensor(); }
  void set_grad(const Tensor& g) { impl_->grad = g.impl_ptr(); }
  void zero_grad(bool set_to_none = true);
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  // Computes d(self)/d(leaves) and accumulates into the leaves' .grad().
  // `gradient` defaults to ones for a single-element tensor.
  void backward(const Tensor& gradient = Tensor()) const;

  // ---- views (share storage) ----
  Tensor view(const Shape& shape) const;     // requires compatible strides; -1 infers
  Tensor reshape(const Shape& shape) const;  // view when possible, else a copy
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // removes `dim`
  Tensor squeeze(int64_t dim) const;
  Tensor squeeze() const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;   // -1 keeps a size
  Tensor expand_as(const Tensor& o) const { return expand(o.shape()); }

  // ---- arithmetic sugar (see engine/ops) ----
  Tensor operator-() const;
  Tensor relu() const;
  Tensor sum() const;
  Tensor mean() const;

  void check_dtype(DType expected) const;
  void bump_version() const { ++impl_->version; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator*(double a, const Tensor& b);

// ---- factories ----
// Every factory allocates through empty(): a negative dimension is std::invalid_argument, a
// size that overflows is ShapeOverflowError, and a failed allocation is OutOfMemoryError
// naming the shape, dtype, bytes and device.
Tensor empty(const Shape& shape, TensorOptions opt = {});
Tensor zeros(const Shape& shape, TensorOptions opt = {});
Tensor ones(const Shape& shape, TensorOptions opt = {});
Tensor full(const Shape& shape, double value, TensorOptions opt = {});
Tensor scalar_tensor(double value, TensorOptions opt = {});  // 0-dim
Tensor arange(int64_t n, TensorOptions opt = DType::I64);
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
// Copies host values into a new tensor of `shape` on `opt.device`.
template <class T> Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                                      TensorOptions opt = dtype_of<T>::value);
Tensor tensor(std::initializer_list<float> values);  // 1-d f32, for tests

// Wraps a dimension index, accepting -ndim..ndim-1. Throws naming `what`.
int64_t wrap_dim(int64_t d, int64_t ndim, const char* what = "dim");
// numpy-style broadcast of two shapes; throws with both shapes on mismatch.
Shape broadcast_shapes(const Shape& a, const Shape& b);

}  // namespace dl
