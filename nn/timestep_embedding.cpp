// timestep_embedding.cpp
#include "nn/timestep_embedding.h"

#include <cmath>

#include "autograd/ops.h"

namespace ddpm {

// guide.md §5: emb = [sin(t freq_i), cos(t freq_i)], freq_i = exp(-ln(10000) i / (half - 1)).
Tensor timestep_embedding(const Tensor& t, int64_t dim, DType dtype) {
    DDPM_CHECK(t.dim() == 1, "timestep_embedding", "t " + t.describe() + " is not (B)");
    DDPM_CHECK(dim % 2 == 0 && dim >= 4, "timestep_embedding", "dim must be even and >= 4");
    const int64_t B = t.size(0), half = dim / 2;
    Tensor emb({B, dim}, dtype);
    for (int64_t b = 0; b < B; ++b) {
        const double tb = t.flat(b);
        for (int64_t i = 0; i < half; ++i) {
            const double freq = std::exp(-std::log(10000.0) * static_cast<double>(i) / static_cast<double>(half - 1));
            emb.set_flat(b * dim + i, std::sin(tb * freq));
            emb.set_flat(b * dim + half + i, std::cos(tb * freq));
        }
    }
    return emb;
}

TimeEmbed::TimeEmbed(int64_t ch_, Initializer& init) : ch(ch_) {
    fc0 = register_module("0", std::make_shared<Linear>(ch, 4 * ch, init));
    fc2 = register_module("2", std::make_shared<Linear>(4 * ch, 4 * ch, init));
}

Variable TimeEmbed::forward(const Tensor& t) {
    Variable emb(timestep_embedding(t, ch, fc0->weight.dtype()));
    return fc2->forward(silu(fc0->forward(emb)));
}

}  // namespace ddpm
