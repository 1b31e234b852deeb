// All modules, initialisers and parameter utilities (like `import torch.nn`).
#pragma once
#include "engine/nn/activation.h"
#include "engine/nn/container.h"
#include "engine/nn/conv.h"
#include "engine/nn/conv_transpose.h"
#include "engine/nn/init.h"
#include "engine/nn/linear.h"
#include "engine/nn/module.h"
#include "engine/nn/norm.h"
#include "engine/nn/pooling.h"
#include "engine/nn/upsample.h"
#include "engine/nn/utils.h"
