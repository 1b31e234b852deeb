#include "engine/tensor/host_reads.h"

#include <utility>
#include <vector>

#include "engine/autograd/autograd.h"
#include "engine/ops/shape.h"

namespace dl {
namespace {

struct PendingCheck {
  Tensor bad;
  std::function<void(int64_t)> raise;
};

thread_local uint64_t t_reads = 0;
thread_local bool t_deferred = false;
thread_local bool t_running = false;  // run_deferred_checks' own reads do not run the checks again
thread_local std::vector<PendingCheck> t_pending;

}  // namespace

uint64_t host_read_count() { return t_reads; }

DeferChecksGuard::DeferChecksGuard(bool enabled) : previous_(t_deferred) { t_deferred = enabled; }
DeferChecksGuard::~DeferChecksGuard() { t_deferred = previous_; }

bool checks_deferred() { return t_deferred; }

void defer_check(Tensor bad, std::function<void(int64_t)> raise) {
  t_pending.push_back({std::move(bad), std::move(raise)});
}

size_t pending_checks() { return t_pending.size(); }

void run_deferred_checks() {
  if (t_running || t_pending.empty()) return;
  std::vector<PendingCheck> pending;
  pending.swap(t_pending);  // a throwing check leaves none behind
  t_running = true;
  try {
    NoGradGuard ng;
    // One read for the checks of one device (a loop's checks are all on its device).
    std::vector<Tensor> flags;
    flags.reserve(pending.size());
    bool one_device = true;
    for (const PendingCheck& c : pending) {
      flags.push_back(c.bad.reshape({1}));
      one_device = one_device && c.bad.device() == pending.front().bad.device();
    }
    std::vector<int64_t> v;
    if (one_device) {
      v = (flags.size() == 1 ? flags[0] : cat(flags, 0)).to_vector<int64_t>();
    } else {
      for (const Tensor& f : flags) v.push_back(f.to_vector<int64_t>()[0]);
    }
    for (size_t i = 0; i < pending.size(); ++i)
      if (v[i] >= 0) pending[i].raise(v[i]);
  } catch (...) {
    t_running = false;
    throw;
  }
  t_running = false;
}

namespace detail {
void note_host_read() {
  ++t_reads;
  run_deferred_checks();
}
}  // namespace detail

}  // namespace dl
