// All learning-rate schedulers (like `import torch.optim.lr_scheduler`).
#pragma once
#include "engine/sched/plateau.h"
#include "engine/sched/scheduler.h"
