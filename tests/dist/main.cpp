// dist_tests' main: joins the launcher's process group, runs the Catch session on every rank,
// and exits non-zero on every rank when a test failed on any of them.
//
// DLTOOL_DIST_TEST_HANG=1 (ctest's dist:hung_rank_aborts) runs no tests: rank 1 sleeps past the
// 3 s timeout of rank 0's allreduce, which must throw DistError; rank 0 prints it and aborts the
// job, the way the trainer handles a dead or hung rank. DLTOOL_DIST_TEST_HANG=die: rank 1 exits
// instead (mpirun then ends the job, whether or not rank 0's allreduce has timed out yet).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "tests/dist/dist_test.h"

namespace {

dl::dist::DistEnv g_env;
dl::dist::ProcessGroupPtr g_group;

double timeout_from_env(double fallback) {
  const char* v = std::getenv("DLTOOL_DIST_TEST_TIMEOUT");
  return v && *v ? std::atof(v) : fallback;
}

// `die`: rank 1 exits at once instead of sleeping (a crashed rank).
int hang_mode(dl::dist::ProcessGroup& pg, bool die) {
  if (pg.rank() == 1) {
    if (die) std::_Exit(9);
    std::this_thread::sleep_for(std::chrono::seconds(120));
  }
  try {
    pg.allreduce(dl::ones({1234}));
  } catch (const dl::dist::DistError& e) {
    std::fprintf(stderr, "dist_tests: %s\n", e.what());
    pg.abort(3);
  }
  std::fprintf(stderr, "dist_tests: rank %d: the allreduce with a hung rank did not time out\n", pg.rank());
  return 1;
}

}  // namespace

namespace dl::test {
dist::ProcessGroup& test_group() { return *g_group; }
const dist::DistEnv& test_env() { return g_env; }
}  // namespace dl::test

int main(int argc, char* argv[]) {
  using namespace dl::dist;
  const bool hang = std::getenv("DLTOOL_DIST_TEST_HANG") != nullptr;
  try {
    g_env = detect_env();
    g_group = init_process_group("mpi", g_env, {.timeout_s = timeout_from_env(hang ? 3 : 60)});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_tests: %s\n", e.what());
    return 2;
  }
  if (hang) return hang_mode(*g_group, std::string(std::getenv("DLTOOL_DIST_TEST_HANG")) == "die");

  const int failed = Catch::Session().run(argc, argv);
  // Every rank's result, so mpirun's exit code does not depend on which rank failed.
  try {
    dl::Tensor any = dl::from_vector<int64_t>({failed}, {1});
    g_group->allreduce(any, ReduceOp::max);
    const int rc = static_cast<int>(any.item());
    g_group.reset();
    // Catch2's exit code is the number of failed assertions; 4 would read as "skipped" in ctest.
    return rc == 4 ? 5 : rc;
  } catch (const DistError& e) {
    std::fprintf(stderr, "dist_tests: %s\n", e.what());
    g_group->abort(1);
  }
}
