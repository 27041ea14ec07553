// forward_strip: the forward process applied to one Fashion-MNIST image.
// x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps at t = 0, 111, ..., 999 (the
// same eps for all), written side by side to forward_strip.png, each pixel shown 3x3.
// Usage: forward_strip [image index = 0] [out = forward_strip.png]
#include <fmt/format.h>

#include "app/data.h"
#include "app/image_io.h"
#include "diffusion/gaussian_diffusion.h"
#include "tensor/random.h"
#include "tensor/shape_ops.h"

using namespace ddpm;

int main(int argc, char** argv) {
    const int64_t index = argc > 1 ? std::stoll(argv[1]) : 0;
    const std::string out = argc > 2 ? argv[2] : "forward_strip.png";
    Dataset data = load_dataset("fashion-mnist", Split::Test, 1, 28);
    BatchLoader loader(data, data.n, 0, false);
    Tensor x0 = loader.make(0).slice(index, index + 1);
    GaussianDiffusion d(DiffusionSchedule::from_betas(make_betas(ScheduleKind::Linear, 1000)), ModelVarType::FixedLarge);
    Generator gen(1);
    Tensor eps = randn(x0.shape(), gen);
    std::vector<Tensor> frames;
    for (int64_t t = 0; t < 1000; t += 111) {
        Tensor x_t = d.q_sample(Variable(x0), Tensor::full({1}, double(t)), eps).data();
        frames.push_back(x_t);
        fmt::print("t = {:3d}: sqrt(abar_t) = {:.4f}, noise std sqrt(1 - abar_t) = {:.4f}\n", t,
                   d.schedule().sqrt_alphas_cumprod[t], d.schedule().sqrt_one_minus_alphas_cumprod[t]);
    }
    write_png(out, upscale(make_grid(concat(frames, 0), static_cast<int64_t>(frames.size())), 3));
    fmt::print("wrote {}\n", out);
}
