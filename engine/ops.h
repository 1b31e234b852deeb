// All engine ops. Include this one header to use the functional API (like torch.nn.functional).
#pragma once
#include "engine/autograd/autograd.h"
#include "engine/ops/ctc.h"
#include "engine/ops/conv_transpose.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/interpolate.h"
#include "engine/ops/linalg.h"
#include "engine/ops/loss.h"
#include "engine/ops/nn.h"
#include "engine/ops/random.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/tensor/tensor.h"
