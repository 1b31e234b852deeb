#include "cli/run/data_parallel.h"

#include <algorithm>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "cli/run/signals.h"
#include "cli/run/trainer.h"
#include "engine/dist/ddp.h"
#include "engine/nn/norm.h"
#include "engine/ops/random.h"
#include "exporters/checkpoint.h"

namespace dl::train {
namespace {

class NullBuffer : public std::streambuf {
 protected:
  int overflow(int c) override { return c; }
  std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
};

void put_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }
void put_bytes(std::string& out, const void* p, size_t n) {
  put_u64(out, n);
  out.append(static_cast<const char*>(p), n);
}

// Reads what put_u64/put_bytes wrote; a short string is a bug of this file (same binary on
// every rank), reported as such rather than read past its end.
class Reader {
 public:
  explicit Reader(const std::string& s) : s_(s) {}
  uint64_t u64() {
    uint64_t v = 0;
    need(sizeof v);
    std::memcpy(&v, s_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }
  std::string bytes() {
    const uint64_t n = u64();
    need(n);
    std::string r = s_.substr(pos_, n);
    pos_ += n;
    return r;
  }

 private:
  void need(uint64_t n) const {
    if (n > s_.size() - pos_) throw std::logic_error("data-parallel: truncated rank state");
  }
  const std::string& s_;
  size_t pos_ = 0;
};

std::string pack(const RankState& st) {
  std::string out;
  put_u64(out, static_cast<uint64_t>(st.loader.epoch));
  put_u64(out, static_cast<uint64_t>(st.loader.batch_in_epoch));
  put_u64(out, st.loader.seed);
  put_u64(out, st.rng.size());
  for (const auto& [name, bytes] : st.rng) {
    put_bytes(out, name.data(), name.size());
    put_bytes(out, bytes.data(), bytes.size());
  }
  return out;
}

RankState unpack(const std::string& s) {
  Reader r(s);
  RankState st;
  st.loader.epoch = static_cast<int64_t>(r.u64());
  st.loader.batch_in_epoch = static_cast<int64_t>(r.u64());
  st.loader.seed = r.u64();
  for (uint64_t n = r.u64(); n > 0; --n) {
    std::string name = r.bytes(), bytes = r.bytes();
    st.rng[name] = std::vector<uint8_t>(bytes.begin(), bytes.end());
  }
  return st;
}

}  // namespace

dist::ProcessGroupPtr init_data_parallel(const Config& cfg, const dist::DistEnv& env) {
  if (!env.distributed()) return nullptr;
  // auto: NCCL for CUDA training when this build has it, MPI otherwise (CPU tensors).
  std::string backend = cfg.train.dist_backend;
  if (backend == "auto") {
    const std::vector<std::string> built = dist::available_backends();
    const bool nccl = std::find(built.begin(), built.end(), "nccl") != built.end();
    backend = Device::parse(cfg.train.device).is_cuda() && nccl ? "nccl" : "mpi";
  }
  dist::ProcessGroupPtr g;
  block_stop_signals_in_new_threads([&] { g = dist::init_process_group(backend, env, {cfg.train.dist_timeout}); });
  return g;
}

std::shared_ptr<dist::Reducer> attach_ddp(const dist::ProcessGroupPtr& group, nn::Module& model, TrainStep& step,
                                 double bucket_cap_mb) {
  dist::DataParallelOptions o;
  o.reducer.bucket_cap_mb = bucket_cap_mb;
  return dist::attach_data_parallel(model, step, group, o);
}

std::ostream& null_stream() {
  static NullBuffer buf;
  static std::ostream s(&buf);
  return s;
}

double mean_over_ranks(dist::ProcessGroup& g, double v) {
  if (g.world_size() == 1) return v;
  Tensor t = from_vector(std::vector<double>{v}, {1});
  g.allreduce(t);
  return t.to_vector<double>()[0] / g.world_size();
}

int agreed_signal(dist::ProcessGroup& g, int local_signal) {
  if (g.world_size() == 1) return local_signal;
  Tensor t = from_vector(std::vector<int64_t>{local_signal}, {1});
  g.allreduce(t, dist::ReduceOp::max);
  return static_cast<int>(t.to_vector<int64_t>()[0]);
}

void rank0_then_share(dist::ProcessGroup& g, const std::function<void()>& write) {
  if (g.world_size() == 1) return write();
  std::string error;
  std::exception_ptr failure;
  if (g.rank() == 0) {
    try {
      write();
    } catch (const std::exception& e) {
      failure = std::current_exception();
      error = e.what();
      if (error.empty()) error = "rank 0 failed";
    }
  }
  g.broadcast_bytes(error, 0);
  if (failure) std::rethrow_exception(failure);
  if (!error.empty()) throw std::runtime_error("rank 0: " + error);
}

std::vector<RankState> gather_rank_states(dist::ProcessGroup& g, const RankState& mine) {
  std::vector<RankState> all;
  for (const std::string& s : g.allgather_bytes(pack(mine))) all.push_back(unpack(s));
  return all;
}

// ---- Trainer's data-parallel parts ---------------------------------------------------------

void Trainer::setup_data_parallel_model() {
  LoaderSpec& l = cfg_.data.loader;
  std::ostringstream os;
  os << "data-parallel: " << world_ << " ranks (" << group_->backend() << "), ";
  if (l.global_batch_size > 0) {
    if (l.global_batch_size % world_ != 0)
      throw config_error(cfg_, "data.loader.global_batch_size",
                         std::to_string(l.global_batch_size) + " samples cannot be split evenly over " +
                             std::to_string(world_) + " ranks",
                         "make it a multiple of the number of ranks, e.g. " +
                             std::to_string((l.global_batch_size / world_ + 1) * world_));
    l.batch_size = l.global_batch_size / world_;
    os << "batch " << l.batch_size << " per rank = data.loader.global_batch_size " << l.global_batch_size << " / "
       << world_ << " ranks";
  } else {
    os << "batch " << l.batch_size << " per rank (data.loader.batch_size is per rank) x " << world_
       << " ranks = global batch " << l.batch_size * world_
       << " (data.loader.global_batch_size fixes the global batch whatever the number of ranks)";
  }
  if (cfg_.train.sync_batch_norm) {
    nn::convert_sync_batchnorm(*model_, group_);
    os << ", SyncBatchNorm";
  }
  progress_->message(os.str());
  // The weights come from rank 0 (attach_ddp broadcasts them); what is drawn from here on
  // (dropout masks) differs per rank, as separate samples need. Rank 0 keeps the stream a
  // single process has.
  if (rank_ > 0) manual_seed(static_cast<uint64_t>(cfg_.train.seed) + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(rank_));
}

int64_t Trainer::check_world_size(const Checkpoint& c, const std::string& path) {
  auto it = c.trainer.find("world_size");
  int64_t saved_world = 1;  // (check_restored_state validates the attribute)
  if (it != c.trainer.end() && std::holds_alternative<int64_t>(it->second))
    saved_world = std::max<int64_t>(1, std::get<int64_t>(it->second));
  if (saved_world == world_) return saved_world;
  const std::string was = std::to_string(saved_world) + " rank" + (saved_world == 1 ? "" : "s");
  const std::string now = std::to_string(world_) + " rank" + (world_ == 1 ? "" : "s");
  if (!opt_.allow_world_size_change)
    throw CheckpointError(path, path + " was written by a run of " + was + "; this run has " + now +
                                    ". Another number of ranks changes the data shards and the global batch, so the "
                                    "run would not continue exactly: resume with " + was +
                                    " (mpirun -np " + std::to_string(saved_world) + ", srun -n " +
                                    std::to_string(saved_world) + "), or pass --allow-world-size-change");
  progress_->message("warning: resuming a checkpoint of " + was + " with " + now +
                     " (--allow-world-size-change): the data shards and the global batch change, so this run does "
                     "not continue exactly as an uninterrupted one would");
  return saved_world;
}

}  // namespace dl::train
