#include "engine/dist/ddp.h"

#include <stdexcept>
#include <string>

namespace dl::dist {

void broadcast_tensors(ProcessGroup& pg, const std::vector<Tensor>& tensors, int root) {
  if (root < 0 || root >= pg.world_size())
    throw std::invalid_argument("broadcast: root " + std::to_string(root) + " is not a rank of a world of " +
                                std::to_string(pg.world_size()));
  if (pg.world_size() == 1) return;
  NoGradGuard no_grad;
  for (const Tensor& t : tensors) {
    if (!t.defined() || t.numel() == 0) continue;
    if (t.is_contiguous()) {
      pg.broadcast(t.detach(), root);
    } else {  // the backends need contiguous tensors
      Tensor c = t.detach().contiguous();
      pg.broadcast(c, root);
      t.detach().copy_(c);
    }
  }
}

void broadcast_parameters(ProcessGroup& pg, nn::Module& module, int root) {
  broadcast_tensors(pg, module.parameters(), root);
  broadcast_tensors(pg, module.buffers(), root);
}

std::shared_ptr<Reducer> attach_data_parallel(nn::Module& module, train::TrainStep& step, ProcessGroupPtr pg,
                                              DataParallelOptions options) {
  if (!pg) throw std::invalid_argument("attach_data_parallel: process group is null");
  if (options.broadcast_parameters) broadcast_parameters(*pg, module, options.root);
  auto reducer = std::make_shared<Reducer>(module.parameters(), pg, options.reducer);
  step.add_before_backward([reducer](bool will_update) { reducer->prepare_for_backward(will_update); });
  step.add_before_update([reducer] { reducer->finalize(); });
  if (options.broadcast_buffers && pg->world_size() > 1) {
    // Listed once: to(Device) keeps each tensor's identity, so these handles stay the module's.
    std::vector<Tensor> buffers = module.buffers();
    if (!buffers.empty())
      step.add_after_update([pg, buffers, root = options.root] { broadcast_tensors(*pg, buffers, root); });
  }
  return reducer;
}

}  // namespace dl::dist
