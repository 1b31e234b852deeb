// What tests/dist/*.cpp share: the process group dist_tests' main() joined (tests/dist/main.cpp).
//
//   TEST_CASE("allreduce sums", "[dist]") {
//     dl::dist::ProcessGroup& pg = dl::test::test_group();   // "mpi" under mpirun, else "single"
//     ...
//
// Every rank runs every test case, in the same order: a test must issue the same collectives on
// every rank (make values, not calls, depend on pg.rank()), and must pass for any world size,
// 1 included (dist_tests run without mpirun). A REQUIRE that fails on one rank only leaves the
// others waiting in the next collective until the group's timeout (DLTOOL_DIST_TEST_TIMEOUT,
// 60 s by default): CHECK is kinder where the test can go on.
#pragma once
#include "engine/dist/process_group.h"

namespace dl::test {

dist::ProcessGroup& test_group();
const dist::DistEnv& test_env();
// The same group as a non-owning ProcessGroupPtr, for what keeps one (Reducer, SyncBatchNorm).
inline dist::ProcessGroupPtr test_group_ptr() { return {std::shared_ptr<void>(), &test_group()}; }

}  // namespace dl::test
