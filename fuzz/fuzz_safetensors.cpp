// fuzz_safetensors.cpp: safetensors files and the checkpoints stored in them.
// Parses the bytes; if they hold a ddpm.cpp checkpoint, reads its config, rebuilds
// its model when the config is small, and restores the whole training state of the
// small fuzz model from it (every tensor and metadata check of a resume).
#include <memory>

#include "fuzz_common.h"
#include "nn/checkpoint.h"

namespace {
struct SmallRun {
    ddpm::UNet model{ddpm::fuzz::small_model_config()};
    ddpm::Adam adam{model.named_parameters(), ddpm::AdamOptions{}};
    ddpm::EMA ema{model.named_parameters(), 0.999};
    ddpm::Generator gen{1};
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static SmallRun run;
    try {
        ddpm::SafeTensors st = ddpm::safetensors_parse(ddpm::fuzz::as_string(data, size), "input");
        for (const auto& [name, t] : st.tensors) (void)t.nbytes();
        ddpm::UNetConfig c = ddpm::checkpoint_config(st, "input");
        if (c.image_size <= 16 && c.channels <= 16 && c.num_res_blocks <= 2) ddpm::load_model(st, "input", true);
        ddpm::TrainingState state{&run.model, &run.ema, &run.adam, 0, {{"train", &run.gen}}, {}};
        ddpm::restore_checkpoint(st, state, "input");
    } catch (const ddpm::FormatError&) {
    }
    return 0;
}
