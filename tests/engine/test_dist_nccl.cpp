// The NCCL backend on one GPU: a communicator of one (detail::make_nccl_group, no MPI needed)
// runs every collective through NCCL, its stream and its completion events. Exits with code 4
// (ctest: "Skipped") without a GPU or in builds without NCCL; compiles in every build.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/dist/backend.h"
#include "engine/ops.h"
#include "tests/support/fixtures.h"

using namespace dl;

namespace {

dist::ProcessGroupPtr nccl_group_of_one() {
  const std::vector<std::string> have = dist::available_backends();
  if (!test::have_cuda() || std::find(have.begin(), have.end(), "nccl") == have.end()) std::exit(4);
  return dist::detail::make_nccl_group(dist::DistEnv{}, {.timeout_s = 60});
}

}  // namespace

TEST_CASE("nccl: a communicator of one runs allreduce, broadcast and allgather on cuda:0", "[cuda][nccl]") {
  dist::ProcessGroupPtr pg = nccl_group_of_one();
  CHECK(pg->backend() == "nccl");
  CHECK(pg->rank() == 0);
  CHECK(pg->world_size() == 1);
  const Device gpu = Device::cuda(0);

  // Pending work on the compute stream (the product) comes before the collective reads t.
  Tensor t = from_vector<float>({1.5f, -2.f, 3.f}, {3}).to(gpu) * 2.0;
  pg->allreduce(t);
  CHECK(t.cpu().to_vector<float>() == std::vector<float>{3.f, -4.f, 6.f});
  Tensor d = from_vector<double>({0.25, -1}, {2}).to(gpu);
  dist::WorkPtr w = pg->allreduce_async(d, dist::ReduceOp::max);
  w->wait();
  CHECK(w->test());
  CHECK(d.cpu().to_vector<double>() == std::vector<double>{0.25, -1});
  Tensor i = from_vector<int64_t>({int64_t(1) << 60, -7}, {2}).to(gpu);
  pg->allreduce(i, dist::ReduceOp::min);
  CHECK(i.cpu().to_vector<int64_t>() == std::vector<int64_t>{int64_t(1) << 60, -7});

  pg->broadcast(t, 0);
  CHECK(t.cpu().to_vector<float>() == std::vector<float>{3.f, -4.f, 6.f});
  Tensor all = pg->allgather(t.view({1, 3}));
  CHECK(all.shape() == Shape{1, 1, 3});
  CHECK(all.device() == gpu);
  CHECK(all.cpu().to_vector<float>() == std::vector<float>{3.f, -4.f, 6.f});

  Tensor none = zeros({0}, gpu);
  pg->allreduce(none);
  pg->barrier();
  CHECK(pg->allgather_bytes("abc") == std::vector<std::string>{"abc"});
}

TEST_CASE("nccl: cpu tensors go to the host group, bad cuda tensors are invalid_argument", "[cuda][nccl]") {
  dist::ProcessGroupPtr pg = nccl_group_of_one();
  Tensor host = ones({2});
  pg->allreduce(host);
  CHECK(host.to_vector<float>() == std::vector<float>{1.f, 1.f});
  CHECK(pg->allgather(host).device() == Device::cpu());
  CHECK_THROWS_WITH(pg->allreduce(zeros({2, 3}, Device::cuda(0)).t()), Catch::Contains("expected a contiguous tensor"));
  CHECK_THROWS_WITH(pg->allreduce(zeros({2}, TensorOptions(DType::U8, Device::cuda(0)))),
                    Catch::Contains("float32, float64 or int64"));
  CHECK_THROWS_AS(pg->broadcast(zeros({2}, Device::cuda(0)), 1), std::invalid_argument);
}
