// Internals the process-group backends share (engine/dist/*.cpp): the checks every collective
// makes on its tensor, the wait loop that turns a hung collective into a DistError, and the
// backend factories init_process_group() dispatches to.
#pragma once
#include <functional>
#include <string>

#include "engine/dist/process_group.h"

namespace dl::dist::detail {

// std::invalid_argument ("allreduce: expected a contiguous tensor, got Tensor[2, 3] float32
// cpu (non-contiguous)") unless `t` is defined and contiguous; `device` is the backend's
// device type, `reduce` asks for a dtype MPI/NCCL can reduce (float32, float64, int64).
void check_tensor(const Tensor& t, const char* op, const char* backend, DeviceType device, bool reduce);
// std::invalid_argument unless 0 <= root < world_size.
void check_root(int root, int world_size, const char* op);

// "rank 1 of 2: allreduce of 1234 float32 values did not complete within 5 s: another rank
// died, hung or runs a different code path; the job is aborted"
std::string timeout_message(int rank, int world_size, const std::string& what, double timeout_s);
// "allreduce of 1234 float32 values"
std::string tensor_op_text(const char* op, const Tensor& t);

// Calls `done` until it returns true; after `timeout_s` throws DistError(timeout_message()).
// Polls back-to-back (yielding the core) for the first second, since MPI moves a message
// forward only inside these calls (a 64 MiB allreduce through shared memory is thousands of
// fragments; in allreduce_bench on the loaded 2-core machine it took 1.5-3x longer when polled
// every 100 us after the first 50 ms), then every 100 us, so a rank waiting for a dead peer does
// not keep a core busy for the whole timeout.
void wait_until(const std::function<bool()>& done, double timeout_s, const std::function<std::string()>& what,
                int rank, int world_size);

// The backends. A build without the library gets a stub that throws DistError saying so
// (single.cpp), so callers need no #ifdef.
ProcessGroupPtr make_mpi_group(const DistEnv& env, const GroupOptions& options);
// One process per GPU: the device is env.local_rank; the unique id goes over an MPI group.
// Unlike init_process_group(), a world of one gets a real NCCL communicator (no MPI needed):
// the [cuda] tests run the NCCL code on one GPU that way.
ProcessGroupPtr make_nccl_group(const DistEnv& env, const GroupOptions& options);

}  // namespace dl::dist::detail
