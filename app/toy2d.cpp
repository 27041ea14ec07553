// toy2d.cpp
#include "app/toy2d.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "app/plot.h"
#include "autograd/ops.h"
#include "diffusion/samplers.h"
#include "diffusion/training_losses.h"
#include "nn/mlp_denoiser.h"
#include "nn/optim.h"
#include "tensor/reduce.h"

namespace ddpm {

Tensor eight_gaussians(int64_t n, Generator& gen) {
    Tensor z = randn({n, 2}, gen, DType::F32), k = randint(8, {n}, gen);
    float* p = z.data<float>();
    for (int64_t i = 0; i < n; ++i) {
        const double a = 2 * M_PI * k.flat(i) / 8;
        p[2 * i] = static_cast<float>(2 * std::cos(a) + 0.1 * p[2 * i]);
        p[2 * i + 1] = static_cast<float>(2 * std::sin(a) + 0.1 * p[2 * i + 1]);
    }
    return z;
}

double mean_nearest_distance(const Tensor& a, const Tensor& b) {
    const Tensor A = a.to(DType::F64), B = b.to(DType::F64);
    const double* pa = A.data<double>();
    const double* pb = B.data<double>();
    double total = 0;
    for (int64_t i = 0; i < A.size(0); ++i) {
        double best = std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < B.size(0); ++j) {
            const double dx = pa[2 * i] - pb[2 * j], dy = pa[2 * i + 1] - pb[2 * j + 1];
            best = std::min(best, dx * dx + dy * dy);
        }
        total += std::sqrt(best);
    }
    return total / static_cast<double>(A.size(0));
}

std::vector<double> mode_shares(const Tensor& a) {
    std::vector<double> shares(8, 0.0);
    for (int64_t i = 0; i < a.size(0); ++i) {
        const double ang = std::atan2(a.flat(2 * i + 1), a.flat(2 * i));
        const int64_t k = ((std::lround(ang / (2 * M_PI / 8)) % 8) + 8) % 8;
        shares[static_cast<size_t>(k)] += 1.0 / static_cast<double>(a.size(0));
    }
    return shares;
}

Toy2dResult run_toy2d(int64_t steps, uint64_t seed) {
    const auto start = std::chrono::steady_clock::now();
    Generator gen(seed);
    const int64_t T = 200, batch = 256, n = 2000;
    GaussianDiffusion d(DiffusionSchedule::from_betas(make_betas(ScheduleKind::Linear, T)), ModelVarType::FixedLarge);
    Initializer init(InitScheme::PyTorch, seed);
    MLPDenoiser net(2, 128, 3, init);
    AdamOptions ao;
    ao.lr = 2e-3;
    Adam adam(net.named_parameters(), ao);
    DenoiseFn model = [&](const Variable& x, const Tensor& t) { return net.forward(x, t); };
    Toy2dResult r;
    for (int64_t step = 0; step < steps; ++step) {
        Tensor x0 = eight_gaussians(batch, gen);
        Tensor t = randint(T, {batch}, gen), noise = randn({batch, 2}, gen);
        adam.zero_grad();
        Variable loss = mean(training_losses(d, model, x0, t, noise, LossType::Simple).loss);
        loss.backward();
        adam.set_lr(ao.lr * (step < steps / 2 ? 1.0 : 0.2));
        adam.step();
        r.final_loss = 0.98 * (step ? r.final_loss : loss.item()) + 0.02 * loss.item();
    }
    r.data = eight_gaussians(n, gen);
    SampleOptions so;
    so.clip_denoised = false;  // the data do not live in [-1, 1]
    r.samples = p_sample_loop(d, model, {n, 2}, gen, so).x0;
    r.noise = randn({n, 2}, gen);
    r.sample_distance = mean_nearest_distance(r.samples, r.data);
    r.noise_distance = mean_nearest_distance(r.noise, r.data);
    r.shares = mode_shares(r.samples);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return r;
}

void write_toy2d_plot(const std::string& path, const Toy2dResult& r) {
    auto series = [](const Tensor& pts, uint8_t cr, uint8_t cg, uint8_t cb, const char* label) {
        Series s;
        for (int64_t i = 0; i < pts.size(0); ++i) {
            s.x.push_back(pts.flat(2 * i));
            s.y.push_back(pts.flat(2 * i + 1));
        }
        s.r = cr, s.g = cg, s.b = cb, s.label = label;
        return s;
    };
    PlotOptions opt;
    opt.width = opt.height = 560;
    opt.lines = false;
    opt.title = "2-D toy: data and DDPM samples";
    opt.x_lo = opt.y_lo = -3, opt.x_hi = opt.y_hi = 3;
    write_png(path, plot({series(r.data, 40, 90, 220, "data"), series(r.samples, 220, 40, 40, "samples")}, opt));
}

}  // namespace ddpm
