// Post-accumulate-grad hooks (engine/autograd/autograd.h) and the training step's
// before_backward hooks: where data-parallel gradient synchronisation starts.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "engine/autograd/autograd.h"
#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "engine/optim/optim.h"
#include "engine/train/step.h"

using namespace dl;

TEST_CASE("post-accumulate-grad hook: once per backward, after every contribution, backward order",
          "[autograd][hooks]") {
  Tensor a = tensor({1, 2, 3}).requires_grad_();
  Tensor b = tensor({4, 5, 6}).requires_grad_();
  Tensor unused = tensor({7}).requires_grad_();
  std::vector<std::string> fired;
  std::vector<std::vector<float>> seen;
  auto log = [&](const std::string& name) {
    return [&fired, &seen, name](const Tensor& leaf) {
      fired.push_back(name);
      seen.push_back(leaf.grad().to_vector<float>());
    };
  };
  register_post_accumulate_grad_hook(a, log("a"));
  register_post_accumulate_grad_hook(b, log("b"));
  register_post_accumulate_grad_hook(unused, log("unused"));

  // a is used twice (a * b and a * 3); b is used after a's first use, so its gradient is ready
  // first: sum(a * 3 + b * a) -> grad a = 3 + b, grad b = a.
  Tensor y = (mul(a, 3.0) + b * a).sum();
  (void)(unused * 2.0);  // in no graph that reaches y
  y.backward();
  REQUIRE(fired.size() == 2);
  CHECK(fired[0] == "b");
  CHECK(fired[1] == "a");
  CHECK(seen[0] == std::vector<float>{1, 2, 3});
  CHECK(seen[1] == std::vector<float>{7, 8, 9});  // both contributions already summed

  // A second backward: the hook sees the accumulated .grad().
  fired.clear();
  seen.clear();
  (a * 2.0).sum().backward();
  REQUIRE(fired == std::vector<std::string>{"a"});
  CHECK(seen[0] == std::vector<float>{9, 10, 11});
}

TEST_CASE("post-accumulate-grad hook: removal, registration order, bad tensors, no cycle", "[autograd][hooks]") {
  Tensor w = tensor({1, 2}).requires_grad_();
  std::vector<int> calls;
  GradHookHandle h1 = register_post_accumulate_grad_hook(w, [&](const Tensor&) { calls.push_back(1); });
  register_post_accumulate_grad_hook(w, [&](const Tensor&) { calls.push_back(2); });
  w.sum().backward();
  CHECK(calls == std::vector<int>{1, 2});
  h1.remove();
  h1.remove();  // twice is fine
  calls.clear();
  w.sum().backward();
  CHECK(calls == std::vector<int>{2});

  Tensor nonleaf = w * 2.0;
  CHECK_THROWS_WITH(register_post_accumulate_grad_hook(nonleaf, [](const Tensor&) {}),
                    Catch::Contains("non-leaf"));
  CHECK_THROWS_AS(register_post_accumulate_grad_hook(tensor({1}), [](const Tensor&) {}), std::invalid_argument);

  // The hook gets the leaf as its argument: registering one keeps nothing alive.
  std::weak_ptr<TensorImpl> gone;
  {
    Tensor t = tensor({3}).requires_grad_();
    gone = t.impl_ptr();
    register_post_accumulate_grad_hook(t, [](const Tensor& leaf) { (void)leaf; });
    (t * t).sum().backward();
  }
  CHECK(gone.expired());
}

TEST_CASE("train step: before_backward hooks say whether the optimizer steps after the backward",
          "[train][step][hooks]") {
  Generator g(3);
  auto lin = std::make_shared<nn::Linear>(2, 1, true, g);
  Tensor x = randn({4, 2}, g);
  auto loss = [&] { return lin->forward(x).sum(); };
  {
    auto opt = optim::make_optimizer("sgd", lin->named_parameters(), {{"lr", 0.01}});
    train::TrainStep step(*opt, {.accumulate_steps = 3});
    std::vector<int> seen;  // will_update per backward, -1 = an update
    step.add_before_backward([&](bool will_update) { seen.push_back(will_update ? 1 : 0); });
    step.add_before_update([&] { seen.push_back(-1); });
    for (int i = 0; i < 4; ++i) step.run(loss);
    step.flush();  // the 4th micro-batch's window ends early: an update without will_update
    CHECK(seen == std::vector<int>{0, 0, 1, -1, 0, -1});
  }
  {
    auto opt = optim::make_optimizer("lbfgs", lin->named_parameters(), {{"lr", 0.1}, {"max_iter", 2}});
    train::TrainStep step(*opt);
    int backward_calls = 0, updates = 0;
    step.add_before_backward([&](bool will_update) {
      CHECK(will_update);
      ++backward_calls;
    });
    step.add_before_update([&] { ++updates; });
    step.run(loss);
    CHECK(backward_calls >= 1);
    CHECK(updates == backward_calls);  // each evaluation: before_backward(true), then before_update
  }
}
