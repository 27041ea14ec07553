// trainer.cpp: one step is: t and eps drawn, L_simple (or L_hybrid), backward, clip,
// Adam, EMA. Everything random is keyed by the seed and the step, or checkpointed,
// so that a resumed run continues bit for bit.
#include "app/trainer.h"

#include <cmath>
#include <stdexcept>

#include "app/sampling.h"
#include "autograd/ops.h"
#include "tensor/shape_ops.h"

namespace ddpm {

namespace {
// The name of the first parameter whose gradient holds a NaN or an infinity.
std::string first_nonfinite_grad(const Module::NamedParameters& params) {
    for (auto& [name, p] : params) {
        const Tensor& g = p.grad();
        if (!g.defined()) continue;
        const float* d = g.data<float>();
        for (int64_t i = 0; i < g.numel(); ++i)
            if (!std::isfinite(d[i])) return name;
    }
    return "";
}
}  // namespace

Trainer::Trainer(const UNetConfig& cfg, const DiffusionSettings& settings, TimestepSampler::Kind sampler_kind, double lr,
                 double ema_decay, double clip, uint64_t seed)
    : model(cfg, InitScheme::DDPM, seed),
      diffusion(settings.make()),
      sampler(sampler_kind, settings.T),
      loss_type(parse_loss_type(settings.loss)),
      adam(model.named_parameters(), AdamOptions{.lr = lr}),
      ema(model.named_parameters(), ema_decay),
      gen(seed + 1),
      grad_clip(clip) {}

// guide.md §9, Algorithm 1 of Ho et al. 2020: t ~ Uniform({1..T}) (or the importance
// sampler), eps ~ N(0, I), a gradient step on || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2,
// each image's loss weighted by 1/(T p_t) for the importance sampler (guide.md §12).
StepResult Trainer::step(const Tensor& x0, const Tensor& labels, double lr, Distributed* dist) {
    // t and eps are drawn for the whole global batch on every rank, each rank keeping
    // its slice: the ranks together see exactly the draws of a one-process run.
    const int64_t ranks = dist ? dist->size() : 1, b = x0.size(0), first = dist ? dist->rank() * b : 0;
    const TimestepSampler::Draw draw = sampler.sample(b * ranks, gen, DType::F32);
    Shape global_shape = x0.shape();
    global_shape[0] = b * ranks;
    Tensor noise = randn(global_shape, gen), t = draw.t, weights = draw.weights;
    if (ranks > 1) t = narrow(t, 0, first, b), weights = narrow(weights, 0, first, b), noise = narrow(noise, 0, first, b);
    if (model.config().num_classes > 0 && !labels.defined())
        throw std::invalid_argument("a class-conditional model trains on labelled images");
    const DenoiseFn net = labels.defined() ? denoiser(model, dropped_labels(labels, first, b * ranks)) : denoiser(model);

    const TrainingLosses l = training_losses(diffusion, net, x0, t, noise, loss_type, 0.001, min_snr_gamma);
    Variable loss = mean(l.loss * Variable(weights));
    adam.zero_grad();
    loss.backward();
    StepResult r{loss.item(), 0, draw.t, l.loss.data(), ""};
    if (ranks > 1) r = averaged_over_ranks(std::move(r), *dist);

    // The norm is finite exactly when every gradient is (float gradients' squares
    // summed in double cannot overflow), so only a non-finite one sends us looking for it.
    r.grad_norm = clip_grad_norm(model.parameters(), grad_clip);
    if (!std::isfinite(r.loss)) r.nonfinite = "the loss";
    else if (!std::isfinite(r.grad_norm)) r.nonfinite = first_nonfinite_grad(model.named_parameters());
    if (!r.nonfinite.empty()) return r;
    adam.set_lr(lr);
    adam.step();
    ema.update();
    sampler.update(draw.t, r.per_image_loss);
    return r;
}

// guide.md §16: one draw per image of the global batch (this rank's slice kept), after t and eps.
Tensor Trainer::dropped_labels(const Tensor& labels, int64_t first, int64_t global_batch) {
    const Tensor u = rand({global_batch}, gen, DType::F64);
    Tensor y = labels.to(DType::F32);
    for (int64_t i = 0; i < y.size(0); ++i)
        if (u.flat(first + i) < label_dropout) y.set_flat(i, double(model.null_label()));
    return y;
}

// The mean of the ranks' means is the global mean; every rank then holds the gradient
// of the whole batch, the same loss to test and every image's loss for the sampler.
StepResult Trainer::averaged_over_ranks(StepResult r, Distributed& dist) {
    const int64_t ranks = dist.size(), b = r.per_image_loss.size(0);
    dist.average_gradients(model.named_parameters());
    dist.allreduce_sum(&r.loss, 1);
    r.loss /= static_cast<double>(ranks);
    Tensor all(Shape{b * ranks}, DType::F32);
    const Tensor local = r.per_image_loss.to(DType::F32);
    dist.allgather(local.data<float>(), b, all.data<float>());
    r.per_image_loss = all;
    return r;
}

TrainingState Trainer::state(int64_t step) {
    return TrainingState{&model, &ema, &adam, step, {{"train", &gen}, {"dropout", &model.dropout_generator()}}, {}};
}

}  // namespace ddpm
