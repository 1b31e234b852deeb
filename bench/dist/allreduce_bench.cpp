// Allreduce bandwidth of the process group, as nccl-tests report it:
//   algbw = bytes / time                      (what one rank's tensor sees)
//   busbw = algbw * 2 (n - 1) / n             (what each link carries in a ring allreduce, so the
//                                              number compares with the hardware's bandwidth)
// time = the slowest rank's mean over the timed iterations (after warm-up). Two reference
// columns time the same buffer with MPI alone: the blocking MPI_Allreduce (Open MPI's tuned
// algorithms) and MPI_Iallreduce + MPI_Wait (the non-blocking algorithm we use, without our
// timeout loop of engine/dist/backend.h).
//
//   mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 build/<dir>/allreduce_bench [max_MiB]
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "engine/dist/process_group.h"

namespace {

// The slowest rank's mean seconds per call of `fn` over `iters` calls, after 3 warm-up calls.
template <class Fn>
double time_per_call(dl::dist::ProcessGroup& pg, int iters, Fn fn) {
  for (int i = 0; i < 3; ++i) fn();
  pg.barrier();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  const double mine = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iters;
  dl::Tensor slowest = dl::from_vector<double>({mine}, {1});
  pg.allreduce(slowest, dl::dist::ReduceOp::max);
  return slowest.item();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dl::dist;
  const int64_t max_bytes = (argc > 1 ? std::atoll(argv[1]) : 64) << 20;
  ProcessGroupPtr pg = init_process_group("mpi", detect_env());
  const int n = pg->world_size();
  if (pg->rank() == 0) {
    std::printf("allreduce (sum, float32) over %d rank(s), backend %s\n", n, pg->backend().c_str());
    std::printf("%12s %10s %8s %12s %12s %12s %16s %16s\n", "bytes", "floats", "iters", "time_us", "algbw_GB/s",
                "busbw_GB/s", "MPI_Allreduce_us", "Iallreduce+Wait");
  }
  for (int64_t bytes = 4 << 10; bytes <= max_bytes; bytes *= 4) {
    dl::Tensor t = dl::zeros({bytes / 4});  // stays finite over any number of sums
    // About 256 MiB moved per size, at least 5 and at most 200 iterations.
    const int iters = static_cast<int>(std::clamp<int64_t>((int64_t(256) << 20) / bytes, 5, 200));
    const double sec = time_per_call(*pg, iters, [&] { pg->allreduce(t); });
    const double mpi_sec = n > 1 ? time_per_call(*pg, iters, [&] {
      MPI_Allreduce(MPI_IN_PLACE, t.raw_data(), static_cast<int>(t.numel()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }) : 0.0;
    const double nbc_sec = n > 1 ? time_per_call(*pg, iters, [&] {
      MPI_Request request;
      MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), static_cast<int>(t.numel()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                     &request);
      MPI_Wait(&request, MPI_STATUS_IGNORE);
    }) : 0.0;
    const double algbw = static_cast<double>(bytes) / sec / 1e9;
    const double busbw = n > 1 ? algbw * 2.0 * (n - 1) / n : 0.0;
    if (pg->rank() == 0)
      std::printf("%12lld %10lld %8d %12.1f %12.3f %12.3f %16.1f %16.1f\n", static_cast<long long>(bytes),
                  static_cast<long long>(bytes / 4), iters, sec * 1e6, algbw, busbw, mpi_sec * 1e6,
                  nbc_sec * 1e6);
  }
  return 0;
}
