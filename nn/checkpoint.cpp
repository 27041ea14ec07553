// checkpoint.cpp
#include "nn/checkpoint.h"

#include <fmt/format.h>

namespace ddpm {

namespace {
constexpr const char* kFormat = "ddpm.cpp/checkpoint/1";
constexpr const char* kModelFormat = "ddpm.cpp/model/1";

nlohmann::json meta_json(const SafeTensors& st, const std::string& key, const std::string& origin) {
    auto it = st.metadata.find(key);
    if (it == st.metadata.end()) throw FormatError(fmt::format("{}: __metadata__ has no '{}'", origin, key));
    try {
        return nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {  // bad syntax, or a number out of range
        throw FormatError(fmt::format("{}: __metadata__.{} is not valid JSON: {}", origin, key, e.what()));
    }
}

using Targets = std::vector<std::pair<std::string, Tensor*>>;

// The file's tensor for every target, after checking names, dtypes and shapes,
// and that nothing under `prefix` in the file is left unclaimed.
std::vector<const Tensor*> checked_sources(const Targets& dst, const SafeTensors& st, const std::string& prefix,
                                           const std::string& origin) {
    std::vector<const Tensor*> src;
    for (auto& [name, t] : dst) {
        if (!st.contains(name)) throw FormatError(fmt::format("{}: tensor '{}' is missing", origin, name));
        const Tensor& s = st.at(name);
        if (s.dtype() != t->dtype() || s.shape() != t->shape())
            throw FormatError(fmt::format("{}: tensor '{}' is {} but the model has {}", origin, name, s.describe(),
                                          t->describe()));
        src.push_back(&s);
    }
    for (auto& [name, t] : st.tensors) {
        if (name.rfind(prefix, 0) != 0) continue;
        bool known = false;
        for (auto& d : dst) known = known || d.first == name;
        if (!known) throw FormatError(fmt::format("{}: tensor '{}' does not belong to this model", origin, name));
    }
    return src;
}

void copy_all(const Targets& dst, const std::vector<const Tensor*>& src) {
    for (size_t i = 0; i < dst.size(); ++i) dst[i].second->copy_(*src[i]);
}

Targets parameter_targets(Module& m, const std::string& prefix) {
    Targets dst;
    for (auto& [name, v] : m.named_parameters()) dst.emplace_back(prefix + name, &v.data());
    return dst;
}
}  // namespace

static void restore_checkpoint_fields(const SafeTensors& st, TrainingState& s, const std::string& origin);

NamedTensors state_dict(const Module& m, const std::string& prefix) {
    NamedTensors out;
    for (auto& [name, v] : m.named_parameters()) out.emplace_back(prefix + name, v.data());
    return out;
}

void load_state_dict(Module& m, const SafeTensors& st, const std::string& prefix, const std::string& origin) {
    const Targets dst = parameter_targets(m, prefix);
    copy_all(dst, checked_sources(dst, st, prefix, origin));
}

void save_checkpoint(const std::string& path, const TrainingState& s) {
    DDPM_CHECK(s.model != nullptr, "save_checkpoint", "no model");
    NamedTensors tensors = state_dict(*s.model, "model.");
    Metadata meta{{"format", kFormat}, {"config", s.model->config().to_json().dump()}, {"step", std::to_string(s.step)}};
    if (s.ema) {
        const auto& params = s.ema->params();
        for (size_t i = 0; i < params.size(); ++i) tensors.emplace_back("ema." + params[i].first, s.ema->shadow()[i]);
        meta["ema"] = nlohmann::json{{"decay", s.ema->decay()}, {"updates", s.ema->updates()}}.dump();
    }
    if (s.optimizer) {
        const auto& params = s.optimizer->params();
        for (size_t i = 0; i < params.size(); ++i) {
            tensors.emplace_back("optim.exp_avg." + params[i].first, s.optimizer->exp_avg()[i]);
            tensors.emplace_back("optim.exp_avg_sq." + params[i].first, s.optimizer->exp_avg_sq()[i]);
        }
        const AdamOptions& o = s.optimizer->options();
        meta["optimizer"] = nlohmann::json{{"type", o.decoupled ? "adamw" : "adam"}, {"lr", o.lr}, {"beta1", o.beta1},
                                           {"beta2", o.beta2}, {"eps", o.eps}, {"weight_decay", o.weight_decay},
                                           {"t", s.optimizer->steps()}}
                                .dump();
    }
    nlohmann::json rng = nlohmann::json::object();
    for (auto& [name, g] : s.generators) rng[name] = {{"seed", g->seed()}, {"offset", g->offset()}};
    meta["rng"] = rng.dump();
    meta["extra"] = s.extra.dump();
    save_safetensors(path, tensors, meta);
}

UNetConfig checkpoint_config(const SafeTensors& st, const std::string& origin) {
    auto it = st.metadata.find("format");
    if (it != st.metadata.end() && it->second != kFormat && it->second != kModelFormat)
        throw FormatError(fmt::format("{}: not a ddpm.cpp file (__metadata__.format is '{}', expected '{}' or '{}')", origin,
                                      it->second, kFormat, kModelFormat));
    if (!st.metadata.count("config"))
        throw FormatError(fmt::format("{}: __metadata__ has no 'config' (the U-Net config as JSON, see docs/unet.md), "
                                      "which a model file needs",
                                      origin));
    try {
        return UNetConfig::from_json(meta_json(st, "config", origin));
    } catch (const std::invalid_argument& e) {
        throw FormatError(fmt::format("{}: __metadata__.{}", origin, e.what()));
    }
}

bool is_checkpoint(const SafeTensors& st) {
    auto it = st.metadata.find("format");
    return it != st.metadata.end() && it->second == kFormat;
}

void save_model_file(const std::string& path, const NamedTensors& weights, const UNetConfig& cfg, Metadata extra) {
    NamedTensors tensors;
    for (auto& [name, t] : weights) tensors.emplace_back("model." + name, t);
    extra["format"] = kModelFormat;
    extra["config"] = cfg.to_json().dump();
    save_safetensors(path, tensors, extra);
}

void restore_checkpoint(const SafeTensors& st, TrainingState& s, const std::string& origin) {
    DDPM_CHECK(s.model != nullptr, "restore_checkpoint", "no model");
    try {
        restore_checkpoint_fields(st, s, origin);
    } catch (const nlohmann::json::exception& e) {  // a field of the wrong type or missing
        throw FormatError(fmt::format("{}: bad checkpoint metadata: {}", origin, e.what()));
    } catch (const std::logic_error& e) {  // std::stoll on a bad step
        if (dynamic_cast<const TensorError*>(&e)) throw;
        throw FormatError(fmt::format("{}: bad checkpoint metadata: {}", origin, e.what()));
    }
}

static void restore_checkpoint_fields(const SafeTensors& st, TrainingState& s, const std::string& origin) {
    // First every check (tensors and metadata), then every copy: a bad file leaves
    // the model, EMA, optimiser and generators exactly as they were.
    const Targets model = parameter_targets(*s.model, "model.");
    const auto model_src = checked_sources(model, st, "model.", origin);
    Targets ema, optim;
    std::vector<const Tensor*> ema_src, optim_src;
    int64_t ema_updates = 0, optim_t = 0;
    if (s.ema) {
        for (size_t i = 0; i < s.ema->params().size(); ++i)
            ema.emplace_back("ema." + s.ema->params()[i].first, &s.ema->shadow()[i]);
        ema_src = checked_sources(ema, st, "ema.", origin);
        ema_updates = meta_json(st, "ema", origin).at("updates").get<int64_t>();
    }
    if (s.optimizer) {
        for (size_t i = 0; i < s.optimizer->params().size(); ++i) {
            optim.emplace_back("optim.exp_avg." + s.optimizer->params()[i].first, &s.optimizer->exp_avg()[i]);
            optim.emplace_back("optim.exp_avg_sq." + s.optimizer->params()[i].first, &s.optimizer->exp_avg_sq()[i]);
        }
        optim_src = checked_sources(optim, st, "optim.", origin);
        optim_t = meta_json(st, "optimizer", origin).at("t").get<int64_t>();
    }
    const nlohmann::json rng = meta_json(st, "rng", origin);
    std::vector<std::pair<uint64_t, uint64_t>> rng_states;
    for (auto& [name, g] : s.generators) {
        if (!rng.contains(name)) throw FormatError(fmt::format("{}: no state for random stream '{}'", origin, name));
        rng_states.emplace_back(rng[name].at("seed").get<uint64_t>(), rng[name].at("offset").get<uint64_t>());
    }
    auto step = st.metadata.find("step");
    if (step == st.metadata.end()) throw FormatError(origin + ": __metadata__ has no 'step'");
    const int64_t step_value = std::stoll(step->second);
    nlohmann::json extra = meta_json(st, "extra", origin);

    copy_all(model, model_src);
    if (s.ema) copy_all(ema, ema_src), s.ema->set_updates(ema_updates);
    if (s.optimizer) copy_all(optim, optim_src), s.optimizer->set_steps(optim_t);
    size_t k = 0;
    for (auto& [name, g] : s.generators) g->set_state(rng_states[k].first, rng_states[k].second), ++k;
    s.step = step_value;
    s.extra = std::move(extra);
}

std::unique_ptr<UNet> load_model(const SafeTensors& st, const std::string& origin, bool use_ema, bool* used_ema) {
    UNetConfig cfg = checkpoint_config(st, origin);
    const bool ema = use_ema && st.contains("ema.conv_in.weight");
    const std::string prefix = ema ? "ema." : "model.";
    if (!st.contains(prefix + "conv_in.weight"))
        throw FormatError(fmt::format("{}: tensor '{}conv_in.weight' is missing (weights are stored as model.NAME)", origin, prefix));
    auto model = std::make_unique<UNet>(cfg, InitScheme::DDPM, 0, st.at(prefix + "conv_in.weight").dtype());
    load_state_dict(*model, st, prefix, origin);
    if (used_ema) *used_ema = ema;
    return model;
}

std::unique_ptr<UNet> load_model(const std::string& path, bool use_ema, bool* used_ema) {
    return load_model(load_safetensors(path), path, use_ema, used_ema);
}

}  // namespace ddpm
