// checkpoint.h: model weights and whole training states in safetensors files.
//
// A training checkpoint holds (all tensors in PyTorch's layouts, F32 or F64):
//   model.<param>               the weights, e.g. model.down.0.block.0.conv1.weight [32,32,3,3]
//   ema.<param>                 the EMA of the weights (if any)
//   optim.exp_avg.<param>       Adam's first moment (if any)
//   optim.exp_avg_sq.<param>    Adam's second moment
// and in __metadata__ (strings, JSON where structured):
//   format     "ddpm.cpp/checkpoint/1"
//   config     the UNetConfig as JSON, so that the file alone rebuilds the model
//   step       optimiser steps taken
//   optimizer  {"type":"adam","lr","beta1","beta2","eps","weight_decay","decoupled","t"}
//   ema        {"decay","updates","warmup"}
//   rng        {name: {"seed","offset"}} for every random stream (dropout, data, timesteps, ...)
//   extra      anything the trainer adds (data order, timestep-sampler history)
//
// A model file (`ddpm export`, or one written by another framework) holds only
//   model.<param>               the weights (the EMA weights, unless exported --raw)
// and in __metadata__ the config (required), and optionally
//   format     "ddpm.cpp/model/1"
//   diffusion  {"T", "schedule", "loss"} (missing: T = 1000, linear, and the loss the config implies)
//   weights    "ema" or "raw", step, source: what was exported
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "nn/ema.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "nn/unet.h"

namespace ddpm {

// Parameters of m as (prefix + name, tensor), sharing storage with the model.
NamedTensors state_dict(const Module& m, const std::string& prefix = "");

// Copies prefix + name for every parameter of m out of st. Refuses (FormatError naming
// the tensor) a missing name, a dtype or shape mismatch, or a name under the prefix
// that m does not have; m is untouched unless every check passes.
void load_state_dict(Module& m, const SafeTensors& st, const std::string& prefix, const std::string& origin);

struct TrainingState {
    UNet* model = nullptr;
    EMA* ema = nullptr;
    Adam* optimizer = nullptr;
    int64_t step = 0;
    std::map<std::string, Generator*> generators;
    nlohmann::json extra = nlohmann::json::object();
};

void save_checkpoint(const std::string& path, const TrainingState& s);
// Restores into already-built objects (build the model from checkpoint_config first).
void restore_checkpoint(const SafeTensors& st, TrainingState& s, const std::string& origin);

// The U-Net config of a checkpoint or model file (__metadata__.config); a FormatError naming the
// field when it is missing or malformed, or when __metadata__.format names another kind of file.
UNetConfig checkpoint_config(const SafeTensors& st, const std::string& origin);
// A whole training checkpoint (format ddpm.cpp/checkpoint/1), not a model file.
bool is_checkpoint(const SafeTensors& st);
// Writes weights (name -> tensor, stored as model.<name>) and the config as a model file;
// `extra` adds metadata (diffusion, weights, step, source).
void save_model_file(const std::string& path, const NamedTensors& weights, const UNetConfig& cfg, Metadata extra = {});
// Rebuilds the model from the file alone, with the EMA weights when asked and present.
std::unique_ptr<UNet> load_model(const std::string& path, bool use_ema, bool* used_ema = nullptr);
std::unique_ptr<UNet> load_model(const SafeTensors& st, const std::string& origin, bool use_ema,
                                 bool* used_ema = nullptr);

}  // namespace ddpm
