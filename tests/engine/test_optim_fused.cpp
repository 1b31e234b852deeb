// The fused multi-tensor optimizer path (kernels/optim.h): the launch plan of the CUDA
// multi-tensor kernel (kernels/multi_tensor_plan.h), and FusedQueue (engine/optim/fused.h),
// which gives a param group's parameters to the kernel in one call. The formulas themselves
// are checked against the engine-op path bit for bit in test_optim.cpp / test_optim_more.cpp,
// and CUDA against CPU by the registry walk (kernel_cases_loss.cpp).
#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <random>

#include "engine/ops.h"
#include "engine/optim/adam.h"
#include "engine/optim/optimizer.h"
#include "engine/optim/sgd.h"
#include "kernels/multi_tensor_plan.h"
#include "kernels/optim.h"
#include "tests/support/fixtures.h"
#include "tests/support/kernel_cases.h"

using namespace dl;

namespace {

// Every chunk of every tensor exactly once, within the launch limits.
void check_plan(const std::vector<int64_t>& numels, int64_t chunk, int max_tensors, int max_blocks) {
  const std::vector<MultiTensorLaunch> plan = plan_multi_tensor(numels, chunk, max_tensors, max_blocks);
  std::map<std::pair<int, int64_t>, int> seen;  // (tensor, chunk) -> times
  int64_t blocks = 0;
  for (const MultiTensorLaunch& l : plan) {
    CHECK(!l.block_slot.empty());
    CHECK(static_cast<int>(l.tensors.size()) <= max_tensors);
    CHECK(static_cast<int>(l.block_slot.size()) <= max_blocks);
    REQUIRE(l.block_slot.size() == l.block_chunk.size());
    for (size_t b = 0; b < l.block_slot.size(); ++b) {
      REQUIRE(l.block_slot[b] >= 0);
      REQUIRE(l.block_slot[b] < static_cast<int>(l.tensors.size()));
      const int t = l.tensors[l.block_slot[b]];
      CHECK(l.block_chunk[b] * chunk < numels[t]);
      ++seen[{t, l.block_chunk[b]}];
      ++blocks;
    }
  }
  int64_t expected = 0;
  for (size_t t = 0; t < numels.size(); ++t) {
    const int64_t chunks = (numels[t] + chunk - 1) / chunk;
    expected += chunks;
    for (int64_t c = 0; c < chunks; ++c) CHECK(seen[{static_cast<int>(t), c}] == 1);
  }
  CHECK(blocks == expected);
  // As few launches as the limits allow: each one but the last is full in tensors or blocks.
  for (size_t i = 0; i + 1 < plan.size(); ++i)
    CHECK((static_cast<int>(plan[i].tensors.size()) == max_tensors ||
           static_cast<int>(plan[i].block_slot.size()) == max_blocks));
}

}  // namespace

TEST_CASE("multi-tensor plan: every chunk once, launches within their limits", "[optim][fused]") {
  check_plan({}, 8, 4, 6);
  check_plan({0, 0}, 8, 4, 6);
  CHECK(plan_multi_tensor({0, 0}, 8, 4, 6).empty());
  // One small list: one launch, one block per tensor.
  const auto one = plan_multi_tensor({3, 8, 1}, 8, 4, 6);
  REQUIRE(one.size() == 1);
  CHECK(one[0].tensors == std::vector<int>{0, 1, 2});
  CHECK(one[0].block_chunk == std::vector<int64_t>{0, 0, 0});
  // A tensor of 5 chunks with room for 3 blocks: it continues in the next launch, new slot.
  const auto split = plan_multi_tensor({2, 33}, 8, 4, 3);
  REQUIRE(split.size() == 2);
  CHECK(split[0].tensors == std::vector<int>{0, 1});
  CHECK(split[0].block_chunk == std::vector<int64_t>{0, 0, 1});
  CHECK(split[1].tensors == std::vector<int>{1});
  CHECK(split[1].block_chunk == std::vector<int64_t>{2, 3, 4});
  // More tensors than a launch takes.
  check_plan(std::vector<int64_t>(100, 5), 8, 36, 320);
  CHECK(plan_multi_tensor(std::vector<int64_t>(100, 5), 8, 36, 320).size() == 3);
  // Random lists: zeros, exact multiples of the chunk, tensors larger than a launch.
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int64_t> numels(rng() % 60);
    for (int64_t& n : numels) {
      const int kind = static_cast<int>(rng() % 4);
      n = kind == 0 ? 0 : kind == 1 ? 16 * static_cast<int64_t>(rng() % 5) : static_cast<int64_t>(rng() % 400);
    }
    INFO("trial " << trial);
    check_plan(numels, 16, 1 + static_cast<int>(rng() % 8), 1 + static_cast<int>(rng() % 12));
  }
}

namespace {

// Counts the CPU kernel calls of a stub and the rows they carried, then calls the kernel.
struct CallLog {
  static inline std::vector<size_t> rows;
};
template <class Stub, class Args>
struct Counting {
  static inline typename std::remove_reference_t<decltype(Stub::slot(DeviceType::CPU))> real = nullptr;
  static void fn(const OptimList& l, const Args& a) {
    CallLog::rows.push_back(l.size());
    real(l, a);
  }
  // Swaps the counting wrapper in for the lifetime of the object.
  struct Scope {
    Scope() {
      real = Stub::slot(DeviceType::CPU);
      Stub::slot(DeviceType::CPU) = &fn;
      CallLog::rows.clear();
    }
    ~Scope() { Stub::slot(DeviceType::CPU) = real; }
  };
};

std::vector<Tensor> params_for(uint64_t seed) {
  std::vector<Tensor> ps;
  for (int64_t i = 0; i < 6; ++i) ps.push_back(test::case_randn({3 + i, 4}, seed + static_cast<uint64_t>(i), Device::cpu(), true));
  return ps;
}

void set_grads(const std::vector<Tensor>& ps, uint64_t seed, const std::vector<bool>& has_grad) {
  for (size_t i = 0; i < ps.size(); ++i) {
    Tensor p = ps[i];
    p.set_grad(has_grad[i] ? test::case_randn(p.shape(), seed + i, Device::cpu()) : Tensor());
  }
}

// Trains with and without the fused kernels (`train(fused)` returns its parameters): the same
// bits. Returns the rows of each fused kernel call.
std::vector<size_t> fused_calls(const std::function<std::vector<Tensor>(bool)>& train) {
  const std::vector<Tensor> fused = train(true);
  const std::vector<size_t> calls = CallLog::rows;
  const std::vector<Tensor> ops = train(false);
  REQUIRE(fused.size() == ops.size());
  for (size_t i = 0; i < fused.size(); ++i) CHECK_CLOSE(fused[i].detach(), ops[i].detach(), 0, 0);
  return calls;
}

}  // namespace

TEST_CASE("fused optimizers: one kernel call per param group, the engine ops' bits", "[optim][fused]") {
  using SgdCount = Counting<decltype(sgd_step_stub), SgdArgs>;
  const std::vector<size_t> calls = fused_calls([](bool fused) {
    std::vector<Tensor> ps = params_for(11);
    // Parameter 4 is a transposed view: not contiguous, so it takes the engine-op path.
    ps[4] = test::case_randn({4, 7}, 99, Device::cpu()).t().requires_grad_();
    std::vector<optim::ParamGroup> groups{
        optim::ParamGroup::from({{"a", ps[0]}, {"b", ps[1]}, {"c", ps[2]}}),
        optim::ParamGroup::from({{"d", ps[3]}, {"e", ps[4]}, {"f", ps[5]}}, {{"lr", 0.05}})};
    optim::SGD opt(groups, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01});
    opt.set_fused(fused);
    SgdCount::Scope scope;
    // Step 1: "b" has no gradient, the others start their momentum buffers. Step 2: "b"
    // starts its buffer while the others continue theirs: its own call. Step 3: all continue.
    const std::vector<std::vector<bool>> grads{{1, 0, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1}};
    for (size_t s = 0; s < grads.size(); ++s) {
      set_grads(ps, 100 + 10 * s, grads[s]);
      opt.step();
    }
    return ps;
  });
  // Step 1: {a, c} and {d, f} ("e" runs the engine ops). Step 2: {a}, {b} (first buffer),
  // {c}, {d, f}. Step 3: {a, b, c}, {d, f}.
  CHECK(calls == std::vector<size_t>{2, 2, 1, 1, 1, 2, 3, 2});
}

TEST_CASE("fused optimizers: Adam parameters at different steps split the call, same bits", "[optim][fused]") {
  using AdamCount = Counting<decltype(adam_step_stub), AdamArgs>;
  const std::vector<size_t> calls = fused_calls([](bool fused) {
    std::vector<Tensor> ps = params_for(21);
    optim::Adam opt(optim::NamedTensors{{"a", ps[0]}, {"b", ps[1]}, {"c", ps[2]}, {"d", ps[3]}},
                    {.lr = 0.01, .weight_decay = 0.1, .amsgrad = true});
    ps.resize(4);
    opt.set_fused(fused);
    AdamCount::Scope scope;
    set_grads(ps, 200, {1, 1, 0, 1});  // "c" is a step behind from now on
    opt.step();
    set_grads(ps, 210, {1, 1, 1, 1});
    opt.step();
    return ps;
  });
  CHECK(calls == std::vector<size_t>{3, 2, 1, 1});  // step 2: {a, b} at 2, {c} at 1, {d} at 2
}
