// sampling.cpp
#include "app/sampling.h"

#include <fmt/format.h>

#include <stdexcept>

#include "autograd/ops.h"
#include "diffusion/ode_samplers.h"
#include "tensor/elementwise.h"
#include "tensor/shape_ops.h"
#include "tensor/winograd.h"

namespace ddpm {

DenoiseFn denoiser(UNet& model) {
    return [&model](const Variable& x_t, const Tensor& t) { return model.forward(x_t, t); };
}

DenoiseFn denoiser(UNet& model, const Tensor& labels, const Guidance& g) {
    const ConditionalDenoiseFn net = [&model](const Variable& x_t, const Tensor& t, const Tensor& y) {
        return model.forward(x_t, t, y);
    };
    return guided_denoiser(net, labels, model.null_label(), g, model.config().in_channels);
}

Guidance guidance_of(const SamplerSpec& spec) {
    Guidance g{.w = spec.guidance};
    if (spec.guidance_interval.empty()) return g;
    if (spec.guidance_interval.size() != 2 || spec.guidance_interval[0] < 0 || spec.guidance_interval[0] > spec.guidance_interval[1])
        throw std::invalid_argument("--guidance-interval takes two timesteps T_MIN <= T_MAX");
    g.t_min = double(spec.guidance_interval[0]), g.t_max = double(spec.guidance_interval[1]);
    return g;
}

Tensor cycled_labels(int64_t num, int64_t num_classes) {
    Tensor y({num}, DType::F32);
    for (int64_t i = 0; i < num; ++i) y.set_flat(i, double(i % num_classes));
    return y;
}

GaussianDiffusion sampling_chain(const GaussianDiffusion& base, const SamplerSpec& spec) {
    const int64_t T = base.num_timesteps();
    if (spec.sampler == "dpmpp2m" || spec.sampler == "heun") return base;
    const bool ddim = spec.sampler == "ddim";
    const int64_t steps = spec.steps ? spec.steps : (ddim ? std::min<int64_t>(50, T) : T);
    if (!ddim && steps == T) return base;
    const std::string use = ddim ? (spec.spacing.empty() ? "ddim" : spec.spacing) + std::to_string(steps) : std::to_string(steps);
    return base.respaced(space_timesteps(T, use));
}

Tensor sample_images(UNet& model, const GaussianDiffusion& chain, const SamplerSpec& spec, int64_t num, int64_t batch,
                     Generator& gen, SampleResult* trajectory, const std::function<void(int64_t, int64_t)>& progress,
                     const Tensor& labels) {
    const UNetConfig& cfg = model.config();
    if (spec.guidance != 0 && !labels.defined())
        throw std::invalid_argument("guidance needs the class of each image (--class)");
    if (labels.defined() && (labels.dim() != 1 || labels.size(0) != num))
        throw std::invalid_argument(fmt::format("labels {} for {} images", labels.describe(), num));
    // The weights stay as they are until every image is made: each 3x3 convolution's
    // kernels are transformed once, not at every step (winograd.h).
    const KernelTransformCache kept;
    std::vector<Tensor> parts;
    for (int64_t done = 0; done < num; done += batch) {
        const DenoiseFn net = labels.defined() ? denoiser(model, labels.slice(done, std::min(num, done + batch)), guidance_of(spec))
                                               : denoiser(model);
        SampleOptions so;
        so.keep_trajectory = trajectory && done == 0;
        so.progress = progress;
        const Shape shape{std::min(batch, num - done), cfg.in_channels, cfg.image_size, cfg.image_size};
        SampleResult r = spec.sampler == "ddim"      ? ddim_sample_loop(chain, net, shape, gen, spec.eta, so)
                         : spec.sampler == "dpmpp2m" ? dpm_solver_pp_2m_sample_loop(chain, net, shape, gen, ode_calls(spec), so, spec.eta)
                         : spec.sampler == "heun"    ? heun_sample_loop(chain, net, shape, gen, ode_calls(spec), so)
                                                     : p_sample_loop(chain, net, shape, gen, so);
        parts.push_back(clamp(r.x0, -1.0, 1.0));
        if (so.keep_trajectory) *trajectory = std::move(r);
    }
    return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

}  // namespace ddpm
