#include "engine/dist/reducer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

#include "engine/ops/elementwise.h"

namespace dl::dist {

Reducer::Reducer(std::vector<Tensor> params, ProcessGroupPtr pg, ReducerOptions options) : pg_(std::move(pg)) {
  if (!pg_) throw std::invalid_argument("Reducer: process group is null");
  if (!(options.bucket_cap_mb > 0) || !(options.first_bucket_mb > 0))
    throw std::invalid_argument("Reducer: bucket_cap_mb and first_bucket_mb must be > 0, got " +
                                std::to_string(options.bucket_cap_mb) + " and " +
                                std::to_string(options.first_bucket_mb));
  for (Tensor& p : params) {
    if (!p.defined() || !p.requires_grad()) continue;
    for (const Tensor& q : params_)
      if (q.same(p)) throw std::invalid_argument("Reducer: a parameter is listed twice (" + p.str() + ")");
    params_.push_back(std::move(p));
  }
  assign_buckets(options);
  marked_.assign(params_.size(), 0);
  if (pg_->world_size() == 1) return;  // nothing to average
  hooks_.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i)
    hooks_.push_back(register_post_accumulate_grad_hook(params_[i], [this, i](const Tensor&) { on_grad_ready(i); }));
}

Reducer::~Reducer() {
  for (GradHookHandle& h : hooks_) h.remove();
}

// torch.distributed._compute_bucket_assignment_by_size over the reversed parameter list: one
// open bucket per (dtype, device); a bucket closes when its bytes reach its limit (the first
// limit, then the cap); buckets are ordered by their first parameter.
void Reducer::assign_buckets(const ReducerOptions& options) {
  const double mib = 1024.0 * 1024.0;
  const int64_t first_bytes = static_cast<int64_t>(options.first_bucket_mb * mib);
  const int64_t cap_bytes = static_cast<int64_t>(options.bucket_cap_mb * mib);
  struct Open {
    Bucket bucket;
    int64_t bytes = 0;
    int64_t limit = 0;
  };
  std::map<std::pair<int, std::string>, Open> open;
  std::vector<Bucket> closed;
  for (size_t k = params_.size(); k-- > 0;) {
    const Tensor& p = params_[k];
    auto [it, fresh] = open.try_emplace({static_cast<int>(p.dtype()), p.device().str()});
    Open& o = it->second;
    if (fresh) o.limit = first_bytes;
    o.bucket.params.push_back(k);
    o.bucket.offsets.push_back(o.bucket.numel);
    o.bucket.numel += p.numel();
    o.bytes += p.numel() * static_cast<int64_t>(p.element_size());
    if (o.bytes >= o.limit) {
      closed.push_back(std::move(o.bucket));
      o = Open{Bucket{}, 0, cap_bytes};
    }
  }
  for (auto& [key, o] : open)
    if (!o.bucket.params.empty()) closed.push_back(std::move(o.bucket));
  // params are packed from the last one: a larger index is an earlier position.
  std::stable_sort(closed.begin(), closed.end(),
                   [](const Bucket& a, const Bucket& b) { return a.params.front() > b.params.front(); });
  buckets_ = std::move(closed);
  bucket_of_.assign(params_.size(), 0);
  for (size_t b = 0; b < buckets_.size(); ++b)
    for (size_t i : buckets_[b].params) bucket_of_[i] = b;
}

std::vector<std::vector<size_t>> Reducer::bucket_params() const {
  std::vector<std::vector<size_t>> out;
  for (const Bucket& b : buckets_) out.push_back(b.params);
  return out;
}

void Reducer::prepare_for_backward(bool sync) {
  if (next_bucket_ > 0)
    throw std::logic_error("Reducer: prepare_for_backward() called again after " + std::to_string(next_bucket_) +
                           " bucket(s) were all-reduced; call finalize() once per optimizer step, after the "
                           "backward that completes it (the only one prepared with sync = true)");
  sync_ = sync;
  std::fill(marked_.begin(), marked_.end(), 0);
  for (Bucket& b : buckets_) b.ready = 0;
}

void Reducer::on_grad_ready(size_t param) {
  // Drive the progress of the transfers in flight (MPI moves data inside its calls).
  for (size_t b = 0; b < next_bucket_; ++b)
    if (buckets_[b].work) buckets_[b].work->test();
  if (!sync_) return;
  Bucket& bucket = buckets_[bucket_of_[param]];
  if (marked_[param] || bucket_of_[param] < next_bucket_)
    throw std::logic_error("Reducer: the gradient of parameter " + std::to_string(param) + " " +
                           params_[param].str() +
                           " became ready again after its bucket was all-reduced (a second backward without "
                           "prepare_for_backward()?)");
  marked_[param] = 1;
  if (++bucket.ready < bucket.params.size()) return;
  // Launch in bucket order: a complete bucket waits for the incomplete ones before it.
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].ready == buckets_[next_bucket_].params.size())
    launch(buckets_[next_bucket_++]);
}

void Reducer::launch(Bucket& b) {
  if (!b.flat.defined())  // allocated on first use: a world of one never needs it
    b.flat = empty({b.numel + static_cast<int64_t>(b.params.size())}, params_[b.params.front()].options());
  for (size_t k = 0; k < b.params.size(); ++k) {
    const Tensor& p = params_[b.params[k]];
    Tensor slot = b.flat.narrow(0, b.offsets[k], p.numel());
    Tensor used = b.flat.narrow(0, b.numel + static_cast<int64_t>(k), 1);
    const Tensor g = p.grad();
    if (g.defined()) {
      slot.view(p.shape()).copy_(g);
      fill_(used, 1.0);
    } else {
      zero_(slot);
      zero_(used);
    }
  }
  b.work = pg_->allreduce_async(b.flat);
}

void Reducer::unpack(Bucket& b) {
  b.work->wait();
  b.work.reset();
  Tensor grads = b.flat.narrow(0, 0, b.numel);
  mul_(grads, 1.0 / static_cast<double>(pg_->world_size()));
  const std::vector<double> used =
      b.flat.narrow(0, b.numel, static_cast<int64_t>(b.params.size())).to(DType::F64).cpu().to_vector<double>();
  for (size_t k = 0; k < b.params.size(); ++k) {
    if (used[k] == 0) continue;  // no rank has a gradient: stays undefined everywhere
    Tensor& p = params_[b.params[k]];
    Tensor avg = grads.narrow(0, b.offsets[k], p.numel()).view(p.shape());
    Tensor g = p.grad();
    if (g.defined()) g.copy_(avg);
    else p.set_grad(avg.clone());
  }
}

void Reducer::finalize() {
  if (pg_->world_size() == 1) return;
  while (next_bucket_ < buckets_.size()) launch(buckets_[next_bucket_++]);
  for (Bucket& b : buckets_) unpack(b);
  next_bucket_ = 0;
  sync_ = false;
  std::fill(marked_.begin(), marked_.end(), 0);
  for (Bucket& b : buckets_) b.ready = 0;
}

}  // namespace dl::dist
