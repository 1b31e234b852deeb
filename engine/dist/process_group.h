// Process groups (torch.distributed): the collectives data-parallel training is built on.
//
//   DistEnv env = detect_env();                       // SLURM, mpirun or RANK/WORLD_SIZE
//   std::shared_ptr<ProcessGroup> pg = init_process_group("auto", env, {.timeout_s = 300});
//   pg->broadcast(param, /*root=*/0);                 // rank 0's initial weights everywhere
//   WorkPtr w = pg->allreduce_async(bucket);          // sum over ranks, in place
//   ... more backward ...
//   w->wait();
//
// Backends: "mpi" (CPU tensors; the launcher is mpirun, or srun with PMIx), "nccl" (CUDA
// tensors; its unique id is exchanged over MPI), and the world-of-one group every
// non-distributed run uses (every collective is a no-op; single_process_group()).
//
// Rules every backend keeps (PyTorch's): every rank calls the same collectives in the same
// order, with tensors of the same shape and dtype; tensors are contiguous and on the backend's
// device; results are written in place. Collectives are issued from one thread (the training
// loop's); a Work may be waited on later, from that same thread.
//
// Failure: a collective that has not completed after `timeout_s` (a rank died, hung, or took
// another code path) throws DistError naming the operation, this rank and the timeout. After a
// DistError the group is unusable: the caller reports the error and calls abort(), which ends
// every rank of the job (MPI_Abort) instead of leaving them blocked forever.
#pragma once
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl::dist {

class DistError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ReduceOp { sum, max, min };

// An asynchronous collective in flight. wait() returns once it has completed on this rank (its
// tensor then holds the result) and throws DistError on timeout. Waiting twice is allowed.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  // Non-blocking progress check: true once complete (lets the caller drive MPI's progress
  // engine while it computes, so a transfer overlaps backward).
  virtual bool test() = 0;
};
using WorkPtr = std::shared_ptr<Work>;

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;  // "mpi", "nccl", "single"

  // Elementwise reduction over ranks, in place (float32, float64 or int64 tensors).
  virtual WorkPtr allreduce_async(Tensor t, ReduceOp op = ReduceOp::sum) = 0;
  void allreduce(Tensor t, ReduceOp op = ReduceOp::sum) { allreduce_async(std::move(t), op)->wait(); }
  // `root`'s values into every rank's `t`, in place.
  virtual void broadcast(Tensor t, int root) = 0;
  // Every rank's `t` stacked: [world_size, *t.shape], rank r's tensor at index r.
  virtual Tensor allgather(const Tensor& t) = 0;
  virtual void barrier() = 0;
  // Byte strings of any length (loader and RNG states, error text): every rank gets all of them,
  // rank r's at index r.
  virtual std::vector<std::string> allgather_bytes(const std::string& mine) = 0;
  virtual void broadcast_bytes(std::string& s, int root) = 0;

  // Ends every process of the job with `exit_code` (MPI_Abort); the world of one just exits.
  [[noreturn]] virtual void abort(int exit_code) = 0;
};
using ProcessGroupPtr = std::shared_ptr<ProcessGroup>;

// Where a process sits in the job, read from the launcher's environment, first match wins:
//   SLURM (srun):  SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE/SLURM_STEP_TASKS_PER_NODE,
//                  SLURM_CPUS_PER_TASK
//   OpenMPI:       OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK/_LOCAL_SIZE
//   torchrun-like: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
// None of them: rank 0 of 1. Under mpirun inside an sbatch allocation both SLURM_* (of the
// batch step: SLURM_PROCID=0 on every rank, SLURM_NTASKS the allocation's) and OMPI_* are set:
// OMPI_* wins whenever the two disagree on rank or size (mpirun launched the ranks itself).
struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;         // picks the GPU: one process per GPU
  int local_world_size = 1;
  int cpus_per_task = 0;      // SLURM_CPUS_PER_TASK (0 = not set): threads per rank
  std::string launcher;       // "slurm", "mpirun", "env" or "" (not distributed)
  std::string master_addr;    // RANK/WORLD_SIZE launches (NCCL's id exchange without MPI)
  int master_port = 0;
  bool distributed() const { return world_size > 1; }
};

// Throws DistError for an environment that contradicts itself (a rank outside [0, size), a
// non-numeric value), naming the variable.
DistEnv detect_env();

struct GroupOptions {
  double timeout_s = 300;  // a collective waiting longer throws DistError
};

// backend: "auto" (nccl for CUDA training when built with NCCL, else mpi), "mpi", "nccl".
// A world of one returns single_process_group() whatever the backend. DistError when the
// backend is not compiled in, or the launcher's world does not match `env` (e.g. RANK/
// WORLD_SIZE set but MPI sees 1 process: "launch with mpirun -np N or srun --mpi=pmix").
ProcessGroupPtr init_process_group(const std::string& backend, const DistEnv& env, GroupOptions options = {});
ProcessGroupPtr single_process_group();

// Backends compiled into this build ("mpi", "nccl").
std::vector<std::string> available_backends();

}  // namespace dl::dist
