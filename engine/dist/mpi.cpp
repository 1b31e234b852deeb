// The MPI backend (CPU tensors). Every collective is the non-blocking MPI-3 call plus the
// timeout loop of backend.h, so a rank whose peer died or hung gets a DistError instead of
// blocking in MPI forever. Compiled only when CMake finds MPI (DLTOOL_WITH_MPI).
#define OMPI_SKIP_MPICXX 1  // the C API only: no deprecated C++ bindings
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "engine/dist/backend.h"

namespace dl::dist::detail {
namespace {

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw DistError(std::string(call) + " failed: " + std::string(text, static_cast<size_t>(len)));
}

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

// MPI_Finalize at normal exit (atexit), only when we initialised MPI; std::_Exit and MPI_Abort
// skip it, as they must.
void finalize_at_exit() {
  if (!mpi_finalized()) MPI_Finalize();
}

void ensure_initialized() {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  if (mpi_finalized()) throw DistError("init_process_group: MPI was already finalized in this process");
#ifdef OPEN_MPI
  // Open MPI's libnbc reduces an in-place MPI_Iallreduce with a binomial tree (all data to one
  // rank, then broadcast) unless told otherwise; reduce-scatter + allgather (Rabenseifner) moves
  // each byte once: 1.4-1.8x faster from 256 KiB up in allreduce_bench (2 ranks, shared memory),
  // log(p) steps for small messages. A setting in the environment (mpirun --mca ...) wins.
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "rabenseifner", /*overwrite=*/0);
#endif
  int provided = 0;
  check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  std::atexit(finalize_at_exit);
}

MPI_Datatype mpi_dtype(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I64: return MPI_INT64_T;
    default: throw std::invalid_argument(std::string("mpi: no MPI reduction type for ") + dtype_name(t));
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return MPI_SUM;
    case ReduceOp::max: return MPI_MAX;
    case ReduceOp::min: return MPI_MIN;
  }
  throw std::invalid_argument("mpi: unknown ReduceOp");
}

// What the group and its Work objects share: the communicator, the timeout, and whether a
// collective has failed (then the group is unusable and nothing waits on it again).
struct CommState {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int world_size = 1;
  double timeout_s = 300;
  bool broken = false;

  ~CommState() {
    if (comm != MPI_COMM_NULL && !broken && !mpi_finalized()) MPI_Comm_free(&comm);
  }
};

// Requests in flight plus what they read and write (tensors, byte buffers), kept alive until
// they complete.
class MpiWork : public Work {
 public:
  MpiWork(std::shared_ptr<CommState> state, std::string what, std::vector<MPI_Request> requests,
          std::vector<Tensor> keep = {})
      : state_(std::move(state)), what_(std::move(what)), requests_(std::move(requests)), keep_(std::move(keep)) {}

  // Destroyed before completion (never waited on): MPI still writes into the buffers, so wait
  // for it here; a timeout in a destructor cannot throw, so it ends the job.
  ~MpiWork() override {
    if (done_ || state_->broken || mpi_finalized()) return;
    try {
      wait();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }

  bool test() override {
    if (done_) return true;
    if (state_->broken) throw DistError(what_ + ": the process group is unusable after an earlier error");
    int flag = 0;
    const int rc = MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &flag, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      state_->broken = true;
      check_mpi(rc, "MPI_Testall");
    }
    done_ = flag != 0;
    if (done_) keep_.clear();
    return done_;
  }

  void wait() override {
    if (done_) return;
    try {
      wait_until([this] { return test(); }, state_->timeout_s, [this] { return what_; }, state_->rank,
                 state_->world_size);
    } catch (const DistError&) {
      state_->broken = true;
      throw;
    }
  }

 private:
  std::shared_ptr<CommState> state_;
  std::string what_;
  std::vector<MPI_Request> requests_;
  std::vector<Tensor> keep_;
  bool done_ = false;
};

class MpiGroup : public ProcessGroup {
 public:
  explicit MpiGroup(std::shared_ptr<CommState> state) : s_(std::move(state)) {}

  int rank() const override { return s_->rank; }
  int world_size() const override { return s_->world_size; }
  std::string backend() const override { return "mpi"; }

  WorkPtr allreduce_async(Tensor t, ReduceOp op) override {
    check_tensor(t, "allreduce", "mpi", DeviceType::CPU, true);
    const MPI_Datatype dtype = mpi_dtype(t.dtype());
    std::vector<MPI_Request> requests;
    // MPI counts are int: a tensor of more than INT_MAX elements goes in several calls.
    char* data = static_cast<char*>(t.raw_data());
    for (int64_t start = 0; start < t.numel(); start += INT_MAX) {
      const int count = static_cast<int>(std::min<int64_t>(INT_MAX, t.numel() - start));
      requests.push_back(MPI_REQUEST_NULL);
      issue(MPI_Iallreduce(MPI_IN_PLACE, data + start * static_cast<int64_t>(t.element_size()), count, dtype,
                           mpi_op(op), s_->comm, &requests.back()),
            "MPI_Iallreduce");
    }
    return std::make_shared<MpiWork>(s_, tensor_op_text("allreduce", t), std::move(requests), std::vector<Tensor>{t});
  }

  void broadcast(Tensor t, int root) override {
    check_tensor(t, "broadcast", "mpi", DeviceType::CPU, false);
    check_root(root, s_->world_size, "broadcast");
    broadcast_raw(t.raw_data(), static_cast<int64_t>(t.numel() * t.element_size()), root,
                  tensor_op_text("broadcast", t) + " from rank " + std::to_string(root));
  }

  Tensor allgather(const Tensor& t) override {
    check_tensor(t, "allgather", "mpi", DeviceType::CPU, false);
    const int64_t nbytes = t.numel() * static_cast<int64_t>(t.element_size());
    if (nbytes * s_->world_size > INT_MAX)
      throw std::invalid_argument("allgather: " + t.str() + " times " + std::to_string(s_->world_size) +
                                  " ranks exceeds MPI's 2^31-1 bytes per call");
    Shape shape = t.shape();
    shape.insert(shape.begin(), s_->world_size);
    Tensor out = empty(shape, t.options());
    MPI_Request request = MPI_REQUEST_NULL;
    issue(MPI_Iallgather(t.raw_data(), static_cast<int>(nbytes), MPI_BYTE, out.raw_data(), static_cast<int>(nbytes),
                         MPI_BYTE, s_->comm, &request),
          "MPI_Iallgather");
    MpiWork(s_, tensor_op_text("allgather", t), {request}, {t, out}).wait();
    return out;
  }

  void barrier() override {
    MPI_Request request = MPI_REQUEST_NULL;
    issue(MPI_Ibarrier(s_->comm, &request), "MPI_Ibarrier");
    MpiWork(s_, "barrier", {request}).wait();
  }

  std::vector<std::string> allgather_bytes(const std::string& mine) override {
    std::vector<int64_t> lengths(static_cast<size_t>(s_->world_size));
    const int64_t my_length = static_cast<int64_t>(mine.size());
    MPI_Request request = MPI_REQUEST_NULL;
    issue(MPI_Iallgather(&my_length, 1, MPI_INT64_T, lengths.data(), 1, MPI_INT64_T, s_->comm, &request),
          "MPI_Iallgather");
    MpiWork(s_, "allgather_bytes (the lengths)", {request}).wait();

    std::vector<int> counts, displs;
    int64_t total = 0;
    for (int64_t len : lengths) {
      displs.push_back(static_cast<int>(total));
      counts.push_back(static_cast<int>(len));
      total += len;
      // Every rank sees the same lengths, so every rank throws here alike.
      if (total > INT_MAX)
        throw std::invalid_argument("allgather_bytes: " + std::to_string(total) +
                                    "+ bytes over all ranks exceed MPI's 2^31-1 bytes per call");
    }
    std::string all(static_cast<size_t>(total), '\0');
    issue(MPI_Iallgatherv(mine.data(), static_cast<int>(my_length), MPI_BYTE, all.data(), counts.data(),
                          displs.data(), MPI_BYTE, s_->comm, &request),
          "MPI_Iallgatherv");
    MpiWork(s_, "allgather_bytes of " + std::to_string(total) + " bytes", {request}).wait();

    std::vector<std::string> out;
    for (size_t r = 0; r < lengths.size(); ++r)
      out.push_back(all.substr(static_cast<size_t>(displs[r]), static_cast<size_t>(counts[r])));
    return out;
  }

  void broadcast_bytes(std::string& s, int root) override {
    check_root(root, s_->world_size, "broadcast_bytes");
    int64_t length = static_cast<int64_t>(s.size());
    broadcast_raw(&length, sizeof length, root, "broadcast_bytes (the length)");
    s.resize(static_cast<size_t>(length));
    broadcast_raw(s.data(), length, root, "broadcast_bytes of " + std::to_string(length) + " bytes");
  }

  [[noreturn]] void abort(int exit_code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    if (!mpi_finalized()) MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);
  }

 private:
  // A failed MPI call leaves the ranks out of step: the group is unusable from then on.
  void issue(int rc, const char* call) {
    if (s_->broken) throw DistError(std::string(call) + ": the process group is unusable after an earlier error");
    if (rc != MPI_SUCCESS) s_->broken = true;
    check_mpi(rc, call);
  }

  // `nbytes` bytes from `root`, in MPI_Ibcast calls of at most INT_MAX bytes.
  void broadcast_raw(void* data, int64_t nbytes, int root, const std::string& what) {
    std::vector<MPI_Request> requests;
    for (int64_t start = 0; start < nbytes; start += INT_MAX) {
      const int count = static_cast<int>(std::min<int64_t>(INT_MAX, nbytes - start));
      requests.push_back(MPI_REQUEST_NULL);
      issue(MPI_Ibcast(static_cast<char*>(data) + start, count, MPI_BYTE, root, s_->comm, &requests.back()),
            "MPI_Ibcast");
    }
    MpiWork(s_, what, std::move(requests)).wait();
  }

  std::shared_ptr<CommState> s_;
};

}  // namespace

ProcessGroupPtr make_mpi_group(const DistEnv& env, const GroupOptions& options) {
  // SLURM's ranks reach each other through a PMI that srun provides only when asked; without
  // one, Open MPI's MPI_Init aborts the process with a page about building SLURM --with-pmix.
  if (env.launcher == "slurm" && !std::getenv("PMIX_RANK") && !std::getenv("PMI_RANK") && !std::getenv("PMI_FD"))
    throw DistError("SLURM says rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                    " but started this process without a PMI, which MPI needs: launch the ranks with srun "
                    "--mpi=pmix -n " + std::to_string(env.world_size) +
                    " (plain srun has none unless slurm.conf sets MpiDefault=pmix), or with mpirun inside the "
                    "allocation");
  ensure_initialized();
  int mpi_size = 0, mpi_rank = 0;
  check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &mpi_size), "MPI_Comm_size");
  check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank), "MPI_Comm_rank");
  const std::string says = "the environment (" + env.launcher + ") says rank " + std::to_string(env.rank) +
                           " of " + std::to_string(env.world_size);
  if (mpi_size != env.world_size)
    throw DistError(says + " but MPI sees " + std::to_string(mpi_size) + " process(es): launch with mpirun -np " +
                    std::to_string(env.world_size) + " or srun --mpi=pmix -n " + std::to_string(env.world_size) +
                    " (plain srun without --mpi=pmix starts independent one-process MPI jobs)");
  if (mpi_rank != env.rank)
    throw DistError(says + " but MPI numbers this process rank " + std::to_string(mpi_rank) +
                    ": the launcher's variables do not belong to this MPI job");

  auto state = std::make_shared<CommState>();
  state->rank = mpi_rank;
  state->world_size = mpi_size;
  state->timeout_s = options.timeout_s;
  // A communicator of its own (collectives of other groups or libraries cannot interleave with
  // ours); errors come back as codes, which become DistError.
  MPI_Request request = MPI_REQUEST_NULL;
  check_mpi(MPI_Comm_idup(MPI_COMM_WORLD, &state->comm, &request), "MPI_Comm_idup");
  MpiWork(state, "init_process_group (MPI_Comm_idup)", {request}).wait();
  check_mpi(MPI_Comm_set_errhandler(state->comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  return std::make_shared<MpiGroup>(std::move(state));
}

}  // namespace dl::dist::detail
