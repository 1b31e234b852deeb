// All optimizers and gradient utilities (like `import torch.optim`).
#pragma once
#include "engine/optim/adam.h"
#include "engine/optim/clip.h"
#include "engine/optim/optimizer.h"
#include "engine/optim/sgd.h"
