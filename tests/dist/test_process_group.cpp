// The process group's collectives on every rank of the job (mpirun -np 2 and -np 3 in ctest;
// run alone, the same tests check the world of one). Values depend on the rank, so every
// expected result below is exact and differs from what any single rank holds.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/dist/dist_test.h"

using dl::Tensor;
using dl::dist::ReduceOp;

namespace {

int64_t W() { return dl::test::test_group().world_size(); }
int64_t R() { return dl::test::test_group().rank(); }

}  // namespace

TEST_CASE("process group: rank and world size come from the launcher", "[dist]") {
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  CHECK(pg.rank() == dl::test::test_env().rank);
  CHECK(pg.world_size() == dl::test::test_env().world_size);
  CHECK(pg.backend() == (pg.world_size() > 1 ? "mpi" : "single"));
}

TEMPLATE_TEST_CASE("process group: allreduce sum, max and min are exact", "[dist]", float, double) {
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  const int64_t n = 7;
  std::vector<TestType> mine;
  for (int64_t i = 0; i < n; ++i) mine.push_back(static_cast<TestType>((R() + 1) * (i + 1)) + TestType(0.5));

  Tensor sum = dl::from_vector<TestType>(mine, {n});
  Tensor mx = sum.clone(), mn = sum.clone();
  pg.allreduce(sum);
  pg.allreduce(mx, ReduceOp::max);
  pg.allreduce(mn, ReduceOp::min);
  const std::vector<TestType> s = sum.to_vector<TestType>(), a = mx.to_vector<TestType>(),
                              b = mn.to_vector<TestType>();
  for (int64_t i = 0; i < n; ++i) {
    CHECK(s[i] == static_cast<TestType>((i + 1) * W() * (W() + 1) / 2) + TestType(0.5) * W());
    CHECK(a[i] == static_cast<TestType>(W() * (i + 1)) + TestType(0.5));
    CHECK(b[i] == static_cast<TestType>(i + 1) + TestType(0.5));
  }
}

TEST_CASE("process group: int64 allreduce keeps every bit", "[dist]") {
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  // 2^60 + rank: beyond a double's 53 bits, so a reduction through floating point would round.
  const int64_t big = int64_t(1) << 60;
  Tensor sum = dl::from_vector<int64_t>({big + R(), -R()}, {2});
  Tensor mx = sum.clone(), mn = sum.clone();
  pg.allreduce(sum);
  pg.allreduce(mx, ReduceOp::max);
  pg.allreduce(mn, ReduceOp::min);
  CHECK(sum.to_vector<int64_t>() == std::vector<int64_t>{W() * big + W() * (W() - 1) / 2, -W() * (W() - 1) / 2});
  CHECK(mx.to_vector<int64_t>() == std::vector<int64_t>{big + W() - 1, 0});
  CHECK(mn.to_vector<int64_t>() == std::vector<int64_t>{big, -(W() - 1)});
}

TEST_CASE("process group: a large allreduce (4 MiB, many MPI fragments) and an empty one", "[dist]") {
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  Tensor t = dl::full({1 << 20}, static_cast<double>(R() + 1));
  pg.allreduce(t);
  const std::vector<float> v = t.to_vector<float>();
  const float expected = static_cast<float>(W() * (W() + 1) / 2);
  CHECK(std::count(v.begin(), v.end(), expected) == static_cast<int64_t>(v.size()));

  Tensor empty = dl::zeros({0, 3});
  pg.allreduce(empty);
  CHECK(empty.numel() == 0);
}

TEST_CASE("process group: two allreduces in flight, waited in reverse order", "[dist]") {
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  Tensor a = dl::full({1000}, static_cast<double>(R()));
  Tensor b = dl::full({10}, static_cast<double>(2 * R() + 1), dl::DType::F64);
  dl::dist::WorkPtr wa = pg.allreduce_async(a);
  dl::dist::WorkPtr wb = pg.allreduce_async(b, ReduceOp::max);
  wb->wait();
  wa->wait();
  wa->wait();  // waiting twice is allowed
  CHECK(wa->test());
  CHECK(a.to_vector<float>() == std::vector<float>(1000, static_cast<float>(W() * (W() - 1) / 2)));
  CHECK(b.to_vector<double>() == std::vector<double>(10, static_cast<double>(2 * (W() - 1) + 1)));
}

TEST_CASE("process group: many allreduces in flight, polled with test() and waited in any order", "[dist]") {
  // What the DDP reducer does during backward: buckets of different sizes launched one after the
  // other, test() between launches, every wait at the end.
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  const std::vector<int64_t> sizes = {1, 3, 1000, 70000, 5, 300000, 2, 65536};
  std::vector<Tensor> buckets;
  std::vector<dl::dist::WorkPtr> works;
  for (size_t b = 0; b < sizes.size(); ++b) {
    std::vector<float> v(static_cast<size_t>(sizes[b]));
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((R() + 1) * static_cast<int64_t>(b + 1) + i % 7);
    buckets.push_back(dl::from_vector<float>(v, {sizes[b]}));
    works.push_back(pg.allreduce_async(buckets.back()));
    for (const dl::dist::WorkPtr& w : works) w->test();
  }
  for (size_t k = 0; k < works.size(); ++k) works[(k * 5) % works.size()]->wait();  // 0 5 2 7 4 1 6 3
  for (size_t b = 0; b < sizes.size(); ++b) {
    const std::vector<float> v = buckets[b].to_vector<float>();
    int64_t wrong = 0;
    for (size_t i = 0; i < v.size(); ++i)
      wrong += v[i] != static_cast<float>(W() * (W() + 1) / 2 * static_cast<int64_t>(b + 1) + W() * (i % 7));
    CHECK(wrong == 0);
  }
}

TEST_CASE("process group: a Work dropped without wait() still completes before it is gone", "[dist]") {
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  Tensor t = dl::full({4096}, 1.0);
  { dl::dist::WorkPtr w = pg.allreduce_async(t); }
  CHECK(t.to_vector<float>() == std::vector<float>(4096, static_cast<float>(W())));
}

TEST_CASE("process group: broadcast from the last rank", "[dist]") {
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  const int root = static_cast<int>(W() - 1);
  Tensor t = dl::from_vector<double>({R() * 100.0, R() * 100.0 + 1, -3.25}, {3});
  pg.broadcast(t, root);
  CHECK(t.to_vector<double>() == std::vector<double>{root * 100.0, root * 100.0 + 1, -3.25});

  Tensor bytes = dl::from_vector<uint8_t>({static_cast<uint8_t>(R()), 7}, {2});  // any dtype moves
  pg.broadcast(bytes, root);
  CHECK(bytes.to_vector<uint8_t>() == std::vector<uint8_t>{static_cast<uint8_t>(root), 7});
}

TEST_CASE("process group: allgather stacks every rank's tensor at its rank", "[dist]") {
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  Tensor t = dl::from_vector<int64_t>({R() * 10, R() * 10 + 1, R() * 10 + 2, -R(), 0, 5}, {2, 3});
  Tensor all = pg.allgather(t);
  REQUIRE(all.shape() == dl::Shape{W(), 2, 3});
  std::vector<int64_t> expected;
  for (int64_t r = 0; r < W(); ++r)
    for (int64_t v : {r * 10, r * 10 + 1, r * 10 + 2, -r, int64_t(0), int64_t(5)}) expected.push_back(v);
  CHECK(all.to_vector<int64_t>() == expected);
  CHECK(t.to_vector<int64_t>()[0] == R() * 10);  // the input is left alone
}

TEST_CASE("process group: allgather_bytes with a different length on every rank, one empty", "[dist]") {
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  // Rank r sends r * 40000 bytes of value r (rank 0 nothing; NUL bytes included).
  const auto payload = [](int64_t r) { return std::string(static_cast<size_t>(r * 40000), static_cast<char>(r)); };
  const std::vector<std::string> all = pg.allgather_bytes(payload(R()));
  REQUIRE(static_cast<int64_t>(all.size()) == W());
  for (int64_t r = 0; r < W(); ++r) CHECK(all[static_cast<size_t>(r)] == payload(r));
}

TEST_CASE("process group: broadcast_bytes resizes every rank's string to the root's", "[dist]") {
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  const int root = static_cast<int>(W() - 1);
  const std::string sent = std::string("state of rank ") + std::to_string(root) + std::string(3, '\0') + "end";
  std::string s = R() == root ? sent : std::string(static_cast<size_t>(100 + R()), 'x');
  pg.broadcast_bytes(s, root);
  CHECK(s == sent);

  std::string empty = R() == 0 ? "" : "not empty";
  pg.broadcast_bytes(empty, 0);
  CHECK(empty.empty());
}

TEST_CASE("process group: barrier", "[dist]") {
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  for (int i = 0; i < 3; ++i) pg.barrier();
  SUCCEED();
}

TEST_CASE("process group: bad tensors are invalid_argument on every rank, and the group goes on", "[dist]") {
  dl::dist::ProcessGroup& pg = dl::test::test_group();
  Tensor transposed = dl::zeros({3, 4}).t();
  CHECK_THROWS_WITH(pg.allreduce(transposed), Catch::Contains("allreduce: expected a contiguous tensor") &&
                                                  Catch::Contains("non-contiguous"));
  CHECK_THROWS_AS(pg.broadcast(transposed, 0), std::invalid_argument);
  CHECK_THROWS_AS(pg.allgather(transposed), std::invalid_argument);
  CHECK_THROWS_WITH(pg.allreduce(dl::zeros({3}, dl::DType::U8)),
                    Catch::Contains("expected a float32, float64 or int64 tensor") && Catch::Contains("uint8"));
  CHECK_THROWS_WITH(pg.broadcast(dl::zeros({3}), static_cast<int>(W())),
                    Catch::Contains("broadcast: root " + std::to_string(W()) + " is not a rank in [0, "));
  CHECK_THROWS_AS(pg.allreduce(Tensor()), std::invalid_argument);
  std::string s;
  CHECK_THROWS_AS(pg.broadcast_bytes(s, -1), std::invalid_argument);

  Tensor t = dl::ones({2});
  pg.allreduce(t);
  CHECK(t.to_vector<float>() == std::vector<float>(2, static_cast<float>(W())));
}
