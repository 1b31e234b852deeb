// find_hyper_schema: an optimizer's or scheduler's registration looked up by name, for code
// outside configs/ that must apply the config's rules to values from elsewhere (a checkpoint).
#include "configs/config.h"
#include "engine/optim/registry.h"
#include "engine/sched/registry.h"

namespace dl {

const AttrSchema* find_hyper_schema(const std::string& section, const std::string& type, const std::string& key) {
  const std::vector<AttrSchema>* attrs = nullptr;
  if (section == "optimizer") {
    if (const optim::OptimizerDef* d = optim::find_optimizer_def(type)) attrs = &d->hyper;
  } else if (section == "scheduler") {
    if (const sched::SchedulerDef* d = sched::find_scheduler_def(type)) attrs = &d->attrs;
  }
  return attrs ? find_attr(*attrs, key) : nullptr;
}

}  // namespace dl
