// toy2d: diffusion on a 2-D mixture of 8 Gaussians, end to end in a few seconds.
// Trains an MLP eps-network with L_simple, samples with DDPM ancestral sampling,
// and writes toy2d.png (data in blue, samples in red).
// Usage: toy2d [steps=3000] [out=toy2d.png]
#include <fmt/format.h>

#include "app/toy2d.h"

int main(int argc, char** argv) {
    const int64_t steps = argc > 1 ? std::stoll(argv[1]) : 3000;
    const std::string out = argc > 2 ? argv[2] : "toy2d.png";
    ddpm::Toy2dResult r = ddpm::run_toy2d(steps, 0);
    fmt::print("trained {} steps in {:.1f} s, final loss {:.4f}\n", steps, r.seconds, r.final_loss);
    fmt::print("mean distance to the nearest data point: samples {:.4f}, N(0, I) noise {:.4f}\n", r.sample_distance,
               r.noise_distance);
    fmt::print("share of samples per mode:");
    for (double s : r.shares) fmt::print(" {:.3f}", s);
    fmt::print("\n");
    ddpm::write_toy2d_plot(out, r);
    fmt::print("wrote {}\n", out);
}
