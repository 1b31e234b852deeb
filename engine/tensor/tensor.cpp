#include "engine/tensor/tensor.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/tensor/host_reads.h"
#include "kernels/elementwise.h"

namespace dl {

// ---------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------
std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) throw ShapeOverflowError(std::string(what) + " overflows int64");
  return r;
}

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) throw ShapeOverflowError(std::string(what) + " overflows int64");
  return r;
}

int64_t checked_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s)
    if (__builtin_mul_overflow(n, d, &n))
      throw ShapeOverflowError("the number of elements of shape " + shape_str(s) +
                               " overflows int64");
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    // A shape with a zero dim has no elements but still needs strides: [0, 2^40, 2^40] needs
    // 2^80 and is reported, never wrapped. (The last product is not a stride: not checked.)
    if (i > 0) acc = checked_mul(acc, std::max<int64_t>(s[i], 1), "a tensor's strides");
  }
  return st;
}

int64_t wrap_dim(int64_t d, int64_t ndim, const char* what) {
  int64_t n = std::max<int64_t>(ndim, 1);
  if (d < -n || d >= n)
    throw std::out_of_range(std::string(what) + " " + std::to_string(d) +
                            " is out of range for a tensor with " + std::to_string(ndim) +
                            " dimension(s)");
  return d < 0 ? d + n : d;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw std::invalid_argument("shapes " + shape_str(a) + " and " + shape_str(b) +
                                  " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------
int64_t Tensor::size(int64_t d) const { return impl_->shape[wrap_dim(d, dim())]; }
int64_t Tensor::stride(int64_t d) const { return impl_->strides[wrap_dim(d, dim())]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (impl_->shape[i] == 1) continue;
    if (impl_->strides[i] != expected) return false;
    expected *= impl_->shape[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  return "Tensor" + shape_str(shape()) + " " + dtype_name(dtype()) + " " + device().str();
}

void Tensor::check_dtype(DType expected) const {
  if (dtype() != expected)
    throw std::invalid_argument(std::string("expected a ") + dtype_name(expected) +
                                " tensor but got " + dtype_name(dtype()));
}

namespace {

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(impl);
}

// Records a view op whose gradient is given by `fn`.
Tensor view_result(const Tensor& self, Tensor out, const char* name, BackwardFn fn) {
  if (any_requires_grad({self})) record(name, out, {self}, std::move(fn));
  return out;
}

// Strides for viewing (shape, strides) as `new_shape` without copying, if possible
// (the algorithm of torch's computeStride). Empty optional-like: returns false.
bool compute_view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& new_shape,
                          Shape& out) {
  out.assign(new_shape.size(), 0);
  if (old_shape.empty()) {
    std::fill(out.begin(), out.end(), 1);
    return true;
  }
  int64_t numel = shape_numel(old_shape);
  if (numel == 0) {
    out = contiguous_strides(new_shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t tensor_d = static_cast<int64_t>(old_shape.size()) - 1; tensor_d >= 0; --tensor_d) {
    tensor_numel *= old_shape[tensor_d];
    if (tensor_d == 0 || (old_shape[tensor_d - 1] != 1 &&
                          old_strides[tensor_d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (tensor_d > 0) {
        chunk_base_stride = old_strides[tensor_d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Shape infer_shape(const Shape& shape, int64_t numel, const Shape& from) {
  Shape out = shape;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer >= 0) throw std::invalid_argument("view/reshape: only one dimension can be -1");
      infer = static_cast<int64_t>(i);
    } else if (out[i] < 0) {
      throw std::invalid_argument("view/reshape: invalid size " + std::to_string(out[i]));
    } else {
      known *= out[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      throw std::invalid_argument("view/reshape: shape " + shape_str(shape) +
                                  " is invalid for input of shape " + shape_str(from));
    out[infer] = numel / known;
  } else if (known != numel) {
    throw std::invalid_argument("view/reshape: shape " + shape_str(shape) +
                                " is invalid for input of shape " + shape_str(from));
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------
Tensor Tensor::view(const Shape& shape_in) const {
  Shape shape = infer_shape(shape_in, numel(), this->shape());
  Shape strides;
  if (!compute_view_strides(this->shape(), this->strides(), shape, strides))
    throw std::invalid_argument("view: size " + shape_str(shape) +
                                " is not compatible with the input's strides; use reshape()");
  Shape in_shape = this->shape();
  return view_result(*this, make_view(*this, shape, strides, offset()), "ViewBackward",
                     [in_shape](const Tensor& g) -> TensorList { return {g.reshape(in_shape)}; });
}

Tensor Tensor::reshape(const Shape& shape_in) const {
  Shape shape = infer_shape(shape_in, numel(), this->shape());
  Shape strides;
  if (compute_view_strides(this->shape(), this->strides(), shape, strides)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  start_dim = wrap_dim(start_dim, dim());
  end_dim = wrap_dim(end_dim, dim());
  if (start_dim > end_dim) throw std::invalid_argument("flatten: start_dim must be <= end_dim");
  Shape s;
  for (int64_t i = 0; i < start_dim; ++i) s.push_back(size(i));
  int64_t m = 1;
  for (int64_t i = start_dim; i <= end_dim; ++i) m *= size(i);
  s.push_back(m);
  for (int64_t i = end_dim + 1; i < dim(); ++i) s.push_back(size(i));
  return reshape(s);
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  if (dim() == 0) return *this;
  d0 = wrap_dim(d0, dim());
  d1 = wrap_dim(d1, dim());
  Shape sh = shape(), st = strides();
  std::swap(sh[d0], sh[d1]);
  std::swap(st[d0], st[d1]);
  return view_result(*this, make_view(*this, sh, st, offset()), "TransposeBackward",
                     [d0, d1](const Tensor& g) -> TensorList { return {g.transpose(d0, d1)}; });
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  if (static_cast<int64_t>(dims.size()) != dim())
    throw std::invalid_argument("permute: expected " + std::to_string(dim()) + " dims, got " +
                                std::to_string(dims.size()));
  Shape sh(dim()), st(dim());
  std::vector<int64_t> inverse(dim(), -1);
  for (int64_t i = 0; i < dim(); ++i) {
    int64_t d = wrap_dim(dims[i], dim());
    if (inverse[d] >= 0) throw std::invalid_argument("permute: repeated dim");
    inverse[d] = i;
    sh[i] = size(d);
    st[i] = stride(d);
  }
  return view_result(*this, make_view(*this, sh, st, offset()), "PermuteBackward",
                     [inverse](const Tensor& g) -> TensorList { return {g.permute(inverse)}; });
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim());
  if (step <= 0) throw std::invalid_argument("slice: step must be positive");
  int64_t n = size(d);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sh = shape(), st = strides();
  sh[d] = (end - start + step - 1) / step;
  st[d] *= step;
  Shape in_shape = shape();
  return view_result(*this, make_view(*this, sh, st, offset() + start * stride(d)), "SliceBackward",
                     [in_shape, d, start, end, step](const Tensor& g) -> TensorList {
                       Tensor gi = zeros(in_shape, g.options());
                       Tensor dst = gi.slice(d, start, end, step);
                       dst.copy_(g);
                       return {gi};
                     });
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim());
  if (start < 0) start += size(d);
  if (start < 0 || length < 0 || start + length > size(d))
    throw std::out_of_range("narrow: range [" + std::to_string(start) + ", " +
                            std::to_string(start + length) + ") is out of bounds for size " +
                            std::to_string(size(d)));
  return slice(d, start, start + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim());
  if (index < 0) index += size(d);
  if (index < 0 || index >= size(d))
    throw std::out_of_range("select: index " + std::to_string(index) + " out of range");
  return slice(d, index, index + 1).squeeze(d);
}

Tensor Tensor::squeeze(int64_t d) const {
  if (dim() == 0) return *this;
  d = wrap_dim(d, dim());
  if (size(d) != 1) return *this;
  Shape sh = shape();
  sh.erase(sh.begin() + d);
  return reshape(sh);
}

Tensor Tensor::squeeze() const {
  Shape sh;
  for (int64_t s : shape())
    if (s != 1) sh.push_back(s);
  return reshape(sh);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1);
  Shape sh = shape();
  sh.insert(sh.begin() + d, 1);
  return reshape(sh);
}

Tensor Tensor::expand(const Shape& shape_in) const {
  if (static_cast<int64_t>(shape_in.size()) < dim())
    throw std::invalid_argument("expand: target " + shape_str(shape_in) + " has fewer dims than " +
                                shape_str(shape()));
  size_t n = shape_in.size(), off = n - dim();
  Shape sh(n), st(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t target = shape_in[i];
    if (i < off) {
      if (target < 0) throw std::invalid_argument("expand: -1 not allowed for new leading dims");
      sh[i] = target;
      st[i] = 0;
      continue;
    }
    int64_t cur = size(i - off);
    if (target == -1) target = cur;
    if (cur != target && cur != 1)
      throw std::invalid_argument("expand: cannot expand " + shape_str(shape()) + " to " +
                                  shape_str(shape_in));
    sh[i] = target;
    st[i] = cur == target ? stride(i - off) : 0;
  }
  Shape in_shape = shape();
  return view_result(*this, make_view(*this, sh, st, offset()), "ExpandBackward",
                     [in_shape](const Tensor& g) -> TensorList { return {sum_to(g, in_shape)}; });
}

// ---------------------------------------------------------------------------
// Conversion and copies
// ---------------------------------------------------------------------------
Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), options());
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  if (any_requires_grad({*this}))
    record("CloneBackward", out, {*this}, [](const Tensor& g) -> TensorList { return {g}; });
  return out;
}

void Tensor::copy_(const Tensor& src) {
  if (src.device() == device()) {
    copy_stub(device())(src, *const_cast<Tensor*>(this));
    bump_version();
    return;
  }
  // Cross-device: one transfer of dense bytes in dst's dtype. The source is first made dense in
  // dst's dtype on its own device when it is not already; the bytes land directly in dst when
  // dst is dense with the source's shape (every .to(device)), else in a dense buffer on dst's
  // device that a same-device copy spreads into dst's layout (broadcast, strides).
  Tensor staged = src;
  if (staged.dtype() != dtype() || !staged.is_contiguous()) {
    Tensor tmp = empty(src.shape(), TensorOptions(dtype(), src.device()));
    copy_stub(src.device())(src, tmp);
    staged = tmp;
  }
  const bool direct = is_contiguous() && src.shape() == shape();
  Tensor landing = direct ? *this : empty(src.shape(), TensorOptions(dtype(), device()));
  const size_t es = element_size(), nbytes = static_cast<size_t>(staged.numel()) * es;
  if (nbytes > 0) {
    const DeviceType accel = src.device().is_cpu() ? device().type : src.device().type;
    transfer_for(accel).copy(*landing.storage(), static_cast<size_t>(landing.offset()) * es, *staged.storage(),
                             static_cast<size_t>(staged.offset()) * es, nbytes);
  }
  if (!direct) copy_stub(device())(landing, *const_cast<Tensor*>(this));
  bump_version();
}

Tensor Tensor::pin_memory() const {
  if (!device().is_cpu())
    throw std::invalid_argument("pin_memory: only cpu tensors can be pinned, got " + str());
  if (is_pinned()) return *this;
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = StorageImpl::make_pinned(static_cast<size_t>(numel()) * element_size());
  impl->shape = shape();
  impl->strides = contiguous_strides(shape());
  impl->dtype = dtype();
  Tensor out(impl);
  copy_stub(Device::cpu())(*this, out);
  return out;
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Tensor out = empty(shape(), TensorOptions(dtype(), d));
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  Device src = device();
  if (any_requires_grad({*this}))
    record("ToDeviceBackward", out, {*this}, [src](const Tensor& g) -> TensorList { return {g.to(src)}; });
  return out;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = empty(shape(), TensorOptions(t, device()));
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  DType src = dtype();
  if (is_floating(t) && is_floating(src) && any_requires_grad({*this}))
    record("ToDtypeBackward", out, {*this}, [src](const Tensor& g) -> TensorList { return {g.to(src)}; });
  return out;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->shape = impl_->shape;
  impl->strides = impl_->strides;
  impl->offset = impl_->offset;
  impl->dtype = impl_->dtype;
  return Tensor(impl);
}

double Tensor::item() const {
  if (numel() != 1)
    throw std::invalid_argument("item(): tensor with " + std::to_string(numel()) +
                                " elements cannot be converted to a scalar");
  detail::note_host_read();
  Tensor c = to(Device::cpu()).to(DType::F64);
  return *static_cast<const double*>(c.raw_data());
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  detail::note_host_read();
  Tensor c = detach().to(Device::cpu()).to(dtype_of<T>::value).contiguous();
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

// ---------------------------------------------------------------------------
// Autograd entry points
// ---------------------------------------------------------------------------
Tensor& Tensor::requires_grad_(bool r) {
  if (r && !is_floating(dtype()))
    throw std::invalid_argument(std::string("only floating point tensors can require gradients (got ") +
                                dtype_name(dtype()) + ")");
  if (!is_leaf())
    throw std::invalid_argument("requires_grad_() can only be changed on leaf tensors; use detach()");
  impl_->requires_grad = r;
  return *this;
}

void Tensor::zero_grad(bool set_to_none) {
  if (!impl_->grad) return;
  if (set_to_none) {
    impl_->grad.reset();
  } else {
    Tensor g(impl_->grad);
    zero_(g);
  }
}

void Tensor::backward(const Tensor& gradient) const {
  if (!requires_grad())
    throw std::invalid_argument("backward(): tensor does not require grad and has no grad_fn");
  Tensor g = gradient;
  if (!g.defined()) {
    if (numel() != 1)
      throw std::invalid_argument("backward(): grad can be implicitly created only for scalar outputs");
    g = ones(shape(), options());
  }
  run_backward({*this}, {g});
}

Tensor Tensor::operator-() const { return neg(*this); }
Tensor Tensor::relu() const { return dl::relu(*this); }
Tensor Tensor::sum() const { return dl::sum(*this); }
Tensor Tensor::mean() const { return dl::mean(*this); }

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator-(const Tensor& a, double b) { return add(a, -b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator/(const Tensor& a, double b) {
  // Integer tensors: true division in float32, like torch (x * (1/b) would keep an integral
  // reciprocal such as 1/1 in the integer dtype).
  if (!is_floating(a.dtype())) return div(a, scalar_tensor(b));
  return mul(a, 1.0 / b);
}
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }

// ---------------------------------------------------------------------------
// Factories
// ---------------------------------------------------------------------------
Tensor empty(const Shape& shape, TensorOptions opt) {
  for (int64_t s : shape)
    if (s < 0) throw std::invalid_argument("negative dimension in shape " + shape_str(shape));
  const int64_t nbytes = checked_mul(checked_numel(shape), static_cast<int64_t>(dtype_size(opt.dtype)),
                                     "the byte size of a tensor");
  auto impl = std::make_shared<TensorImpl>();
  try {
    impl->storage = std::make_shared<StorageImpl>(static_cast<size_t>(nbytes), opt.device);
  } catch (const OutOfMemoryError& e) {
    throw e.with_context("tensor " + shape_str(shape) + " " + dtype_name(opt.dtype) + " (" +
                         format_bytes(static_cast<double>(nbytes)) + ")");
  } catch (const std::bad_alloc&) {  // the shared_ptr control block, or a backend's own bad_alloc
    throw OutOfMemoryError("tensor " + shape_str(shape) + " " + dtype_name(opt.dtype) + " (" +
                           format_bytes(static_cast<double>(nbytes)) + "): out of memory on " +
                           opt.device.str());
  }
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = opt.dtype;
  Tensor t(impl);
  if (opt.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor full(const Shape& shape, double value, TensorOptions opt) {
  bool rg = opt.requires_grad;
  Tensor t = empty(shape, opt.with_requires_grad(false));
  fill_(t, value);
  if (rg) t.requires_grad_(true);
  return t;
}

Tensor zeros(const Shape& shape, TensorOptions opt) { return full(shape, 0.0, opt); }
Tensor ones(const Shape& shape, TensorOptions opt) { return full(shape, 1.0, opt); }
Tensor scalar_tensor(double value, TensorOptions opt) { return full({}, value, opt); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.options()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.options()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.options()); }

Tensor arange(int64_t n, TensorOptions opt) {
  std::vector<int64_t> v(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  Tensor t = from_vector(v, {static_cast<int64_t>(v.size())}, TensorOptions(DType::I64, opt.device));
  return opt.dtype == DType::I64 ? t : t.to(opt.dtype);
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions opt) {
  if (static_cast<int64_t>(values.size()) != shape_numel(shape))
    throw std::invalid_argument("from_vector: " + std::to_string(values.size()) +
                                " values do not fill shape " + shape_str(shape));
  Tensor host = empty(shape, TensorOptions(dtype_of<T>::value, Device::cpu()));
  if constexpr (std::is_same_v<T, bool>) {
    bool* p = static_cast<bool*>(host.raw_data());
    for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  } else {
    std::copy(values.begin(), values.end(), host.data<T>());
  }
  Tensor out = host;
  if (opt.dtype != host.dtype()) out = out.to(opt.dtype);
  if (opt.device != Device::cpu()) out = out.to(opt.device);
  if (opt.requires_grad) out.requires_grad_(true);
  return out;
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, TensorOptions);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, TensorOptions);
template Tensor from_vector<bool>(const std::vector<bool>&, const Shape&, TensorOptions);

Tensor tensor(std::initializer_list<float> values) {
  std::vector<float> v(values);
  return from_vector(v, {static_cast<int64_t>(v.size())});
}

}  // namespace dl
