// train.h: `ddpm train`.
#pragma once

#include "app/train_options.h"

namespace ddpm {

// Returns the process exit code: 0 done, 130/143 stopped by SIGINT/SIGTERM after
// checkpointing, 1 on a non-finite loss (the last good checkpoint kept).
int run_train(const TrainOptions& opt);

}  // namespace ddpm
