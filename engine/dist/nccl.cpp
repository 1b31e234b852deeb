// The NCCL backend (CUDA tensors, one process per GPU: resolve_device("cuda", local rank)). Compiled
// only in CUDA builds that find nccl.h and libnccl (DLTOOL_WITH_NCCL).
//
// The unique id goes from rank 0 to the others over an MPI group, which also carries what NCCL
// does not do: barrier(), the byte collectives, and collectives on CPU tensors (a training loop
// on GPUs still allreduces host values, e.g. the ranks' stop flags; PyTorch's
// "cpu:gloo,cuda:nccl"). A world of one needs no MPI.
//
// Streams: collectives run on a stream of the group's own, after the work already queued on the
// backend's compute stream (an event), so a bucket's allreduce overlaps the rest of backward.
// Work::wait() polls the collective's completion event with the timeout of backend.h; on
// timeout, or when NCCL reports an asynchronous error, the communicator is aborted
// (ncclCommAbort frees the GPU from the stuck kernel) and DistError is thrown.
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "engine/dist/backend.h"
#include "kernels/cuda/runtime.h"

namespace dl::dist::detail {
namespace {

ncclDataType_t nccl_dtype(DType t) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::I64: return ncclInt64;
    default: throw std::invalid_argument(std::string("nccl: no NCCL reduction type for ") + dtype_name(t));
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
  }
  throw std::invalid_argument("nccl: unknown ReduceOp");
}

// The communicator, its stream and device, and whether it failed (then it is aborted and the
// group unusable).
struct NcclState {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  int device = 0;
  int rank = 0;
  int world_size = 1;
  double timeout_s = 300;
  bool broken = false;
  ProcessGroupPtr host;  // the MPI group: id exchange, barrier, bytes, abort

  void check(ncclResult_t r, const char* call) {
    if (r == ncclSuccess) return;
    const char* last = comm ? ncclGetLastError(comm) : nullptr;
    abort_comm();
    throw DistError("rank " + std::to_string(rank) + " of " + std::to_string(world_size) + ": " + call +
                    " failed: " + ncclGetErrorString(r) + (last && *last ? std::string(" (") + last + ")" : ""));
  }
  // After an error or a timeout: the GPU side of a stuck collective is torn down.
  void abort_comm() {
    if (comm && !broken) ncclCommAbort(comm);
    broken = true;
  }
  ~NcclState() {
    // Errors are ignored: at process exit the CUDA runtime may already be shutting down.
    if (comm && !broken) ncclCommDestroy(comm);
    if (stream) cudaStreamDestroy(stream);
  }
};

class NcclWork : public Work {
 public:
  // `done` == nullptr: nothing was queued (an empty tensor).
  NcclWork(std::shared_ptr<NcclState> state, std::string what, cudaEvent_t done, std::vector<Tensor> keep)
      : state_(std::move(state)), what_(std::move(what)), event_(done), keep_(std::move(keep)), done_(!done) {}

  ~NcclWork() override {
    if (!done_ && !state_->broken) {
      // Never waited on: the GPU still writes into the kept tensors, so wait here; a timeout in
      // a destructor cannot throw, so it ends the job.
      try {
        wait();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        state_->host->abort(1);
      }
    }
    if (event_) cudaEventDestroy(event_);
  }

  bool test() override {
    if (done_) return true;
    if (state_->broken) throw DistError(what_ + ": the process group is unusable after an earlier error");
    ncclResult_t async = ncclSuccess;
    state_->check(ncclCommGetAsyncError(state_->comm, &async), "ncclCommGetAsyncError");
    state_->check(async, what_.c_str());
    const cudaError_t q = cudaEventQuery(event_);
    if (q == cudaErrorNotReady) return false;
    if (q != cudaSuccess) {
      state_->abort_comm();
      throw DistError(what_ + ": " + cudaGetErrorString(q));
    }
    done_ = true;
    keep_.clear();
    return true;
  }

  void wait() override {
    if (done_) return;
    try {
      wait_until([this] { return test(); }, state_->timeout_s, [this] { return what_; }, state_->rank,
                 state_->world_size);
    } catch (const DistError&) {
      state_->abort_comm();
      throw;
    }
  }

 private:
  std::shared_ptr<NcclState> state_;
  std::string what_;
  cudaEvent_t event_ = nullptr;
  std::vector<Tensor> keep_;
  bool done_ = false;
};

class NcclGroup : public ProcessGroup {
 public:
  explicit NcclGroup(std::shared_ptr<NcclState> state) : s_(std::move(state)) {}

  int rank() const override { return s_->rank; }
  int world_size() const override { return s_->world_size; }
  std::string backend() const override { return "nccl"; }

  WorkPtr allreduce_async(Tensor t, ReduceOp op) override {
    if (on_host(t)) return s_->host->allreduce_async(std::move(t), op);
    check(t, "allreduce", true);
    const ncclDataType_t dtype = nccl_dtype(t.dtype());
    return launch(tensor_op_text("allreduce", t), {t}, t.numel(), [&](cudaStream_t stream) {
      return ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), dtype, nccl_op(op),
                           s_->comm, stream);
    });
  }

  void broadcast(Tensor t, int root) override {
    if (on_host(t)) return s_->host->broadcast(std::move(t), root);
    check(t, "broadcast", false);
    check_root(root, s_->world_size, "broadcast");
    const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    launch(tensor_op_text("broadcast", t) + " from rank " + std::to_string(root), {t}, t.numel(),
           [&](cudaStream_t stream) {
             return ncclBroadcast(t.raw_data(), t.raw_data(), nbytes, ncclChar, root, s_->comm, stream);
           })
        ->wait();
  }

  Tensor allgather(const Tensor& t) override {
    if (on_host(t)) return s_->host->allgather(t);
    check(t, "allgather", false);
    Shape shape = t.shape();
    shape.insert(shape.begin(), s_->world_size);
    Tensor out = empty(shape, t.options());
    const size_t nbytes = static_cast<size_t>(t.numel()) * t.element_size();
    launch(tensor_op_text("allgather", t), {t, out}, t.numel(), [&](cudaStream_t stream) {
      return ncclAllGather(t.raw_data(), out.raw_data(), nbytes, ncclChar, s_->comm, stream);
    })->wait();
    return out;
  }

  void barrier() override { s_->host->barrier(); }
  std::vector<std::string> allgather_bytes(const std::string& mine) override { return s_->host->allgather_bytes(mine); }
  void broadcast_bytes(std::string& s, int root) override { s_->host->broadcast_bytes(s, root); }

  [[noreturn]] void abort(int exit_code) override {
    s_->abort_comm();
    s_->host->abort(exit_code);
    std::_Exit(exit_code);  // not reached: GCC does not carry [[noreturn]] through a virtual call
  }

 private:
  static bool on_host(const Tensor& t) { return t.defined() && t.device().is_cpu(); }

  void check(const Tensor& t, const char* op, bool reduce) {
    check_tensor(t, op, "nccl", DeviceType::CUDA, reduce);
    if (t.device().index != s_->device)
      throw std::invalid_argument(std::string(op) + ": this rank's nccl group works on cuda:" +
                                  std::to_string(s_->device) + " (its GPU), got " + t.str());
  }

  // Queues `op` on the group's stream after the compute stream's pending work; the Work holds
  // `keep` (inputs and outputs) until the collective has completed.
  template <class Op>
  WorkPtr launch(std::string what, std::vector<Tensor> keep, int64_t numel, Op op) {
    if (s_->broken) throw DistError(what + ": the process group is unusable after an earlier error");
    if (numel == 0) return std::make_shared<NcclWork>(s_, std::move(what), nullptr, std::vector<Tensor>{});
    cuda::DeviceGuard guard(s_->device);
    cudaEvent_t ready = nullptr, done = nullptr;
    DL_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    DL_CUDA_CHECK(cudaEventRecord(ready, cuda::stream(s_->device)));
    DL_CUDA_CHECK(cudaStreamWaitEvent(s_->stream, ready, 0));
    DL_CUDA_CHECK(cudaEventDestroy(ready));  // the wait is queued; the event may go
    s_->check(op(s_->stream), what.c_str());
    DL_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    DL_CUDA_CHECK(cudaEventRecord(done, s_->stream));
    return std::make_shared<NcclWork>(s_, std::move(what), done, std::move(keep));
  }

  std::shared_ptr<NcclState> s_;
};

}  // namespace

ProcessGroupPtr make_nccl_group(const DistEnv& env, const GroupOptions& options) {
  auto s = std::make_shared<NcclState>();
  s->host = env.world_size == 1 ? single_process_group() : make_mpi_group(env, options);
  s->rank = s->host->rank();
  s->world_size = s->host->world_size();
  s->timeout_s = options.timeout_s;

  // Every rank learns whether every rank has its GPU before any of them enters the blocking
  // ncclCommInitRank (which would wait forever for a rank that gave up).
  std::string problem;
  try {
    // The GPU the trainer picks for 'cuda' (one per local rank, or the task's only visible one).
    s->device = resolve_device("cuda", env.local_rank, cuda_device_count()).index;
    cuda::check_device(s->device);
  } catch (const std::exception& e) {
    problem = "rank " + std::to_string(s->rank) + " (local rank " + std::to_string(env.local_rank) + "): " + e.what() +
              " (the nccl backend runs one process per GPU: launch as many ranks per node as GPUs)";
  }
  for (const std::string& p : s->host->allgather_bytes(problem))
    if (!p.empty()) throw DistError("nccl: " + p);

  ncclUniqueId id;
  std::string id_bytes;
  if (s->rank == 0) {
    // On failure rank 0 sends an empty id, so the others stop at once instead of timing out.
    const ncclResult_t r = ncclGetUniqueId(&id);
    if (r == ncclSuccess) id_bytes.assign(reinterpret_cast<const char*>(&id), sizeof id);
    s->host->broadcast_bytes(id_bytes, 0);
    s->check(r, "ncclGetUniqueId");
  } else {
    s->host->broadcast_bytes(id_bytes, 0);
    if (id_bytes.size() != sizeof id) throw DistError("nccl: rank 0 could not create the NCCL unique id");
    std::memcpy(&id, id_bytes.data(), sizeof id);
  }

  cuda::DeviceGuard guard(s->device);
  DL_CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
  s->check(ncclCommInitRank(&s->comm, s->world_size, id, s->rank), "ncclCommInitRank");
  return std::make_shared<NcclGroup>(std::move(s));
}

}  // namespace dl::dist::detail
