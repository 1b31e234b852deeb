// All learning-rate schedulers (like `import torch.optim.lr_scheduler`).
#pragma once
#include "engine/sched/compose.h"
#include "engine/sched/cyclic.h"
#include "engine/sched/expr.h"
#include "engine/sched/lambda.h"
#include "engine/sched/plateau.h"
#include "engine/sched/scheduler.h"
