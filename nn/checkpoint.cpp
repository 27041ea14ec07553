// checkpoint.cpp
#include "nn/checkpoint.h"

#include <fmt/format.h>

namespace ddpm {

namespace {
constexpr const char* kFormat = "ddpm.cpp/checkpoint/1";

nlohmann::json meta_json(const SafeTensors& st, const std::string& key, const std::string& origin) {
    auto it = st.metadata.find(key);
    if (it == st.metadata.end()) throw FormatError(fmt::format("{}: __metadata__ has no '{}'", origin, key));
    try {
        return nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::parse_error& e) {
        throw FormatError(fmt::format("{}: __metadata__.{} is not valid JSON: {}", origin, key, e.what()));
    }
}

// Copies src into every dst after checking all of them (names, dtypes, shapes).
void copy_checked(const std::vector<std::pair<std::string, Tensor*>>& dst, const SafeTensors& st,
                  const std::string& prefix, const std::string& origin) {
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
    for (size_t i = 0; i < dst.size(); ++i) dst[i].second->copy_(*src[i]);
}
}  // namespace

static void restore_checkpoint_fields(const SafeTensors& st, TrainingState& s, const std::string& origin);

NamedTensors state_dict(const Module& m, const std::string& prefix) {
    NamedTensors out;
    for (auto& [name, v] : m.named_parameters()) out.emplace_back(prefix + name, v.data());
    return out;
}

void load_state_dict(Module& m, const SafeTensors& st, const std::string& prefix, const std::string& origin) {
    std::vector<std::pair<std::string, Tensor*>> dst;
    auto params = m.named_parameters();
    for (auto& [name, v] : params) dst.emplace_back(prefix + name, &v.data());
    copy_checked(dst, st, prefix, origin);
}

void save_checkpoint(const std::string& path, const TrainingState& s) {
    check(s.model != nullptr, "save_checkpoint", "no model");
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
    if (it == st.metadata.end() || it->second != kFormat)
        throw FormatError(fmt::format("{}: not a ddpm.cpp checkpoint (__metadata__.format is '{}', expected '{}')", origin,
                                      it == st.metadata.end() ? "" : it->second, kFormat));
    try {
        return UNetConfig::from_json(meta_json(st, "config", origin));
    } catch (const std::invalid_argument& e) {
        throw FormatError(fmt::format("{}: {}", origin, e.what()));
    }
}

void restore_checkpoint(const SafeTensors& st, TrainingState& s, const std::string& origin) {
    check(s.model != nullptr, "restore_checkpoint", "no model");
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
    load_state_dict(*s.model, st, "model.", origin);
    if (s.ema) {
        const nlohmann::json e = meta_json(st, "ema", origin);
        std::vector<std::pair<std::string, Tensor*>> dst;
        for (size_t i = 0; i < s.ema->params().size(); ++i)
            dst.emplace_back("ema." + s.ema->params()[i].first, &s.ema->shadow()[i]);
        copy_checked(dst, st, "ema.", origin);
        s.ema->set_updates(e.at("updates").get<int64_t>());
    }
    if (s.optimizer) {
        const nlohmann::json o = meta_json(st, "optimizer", origin);
        std::vector<std::pair<std::string, Tensor*>> dst;
        for (size_t i = 0; i < s.optimizer->params().size(); ++i) {
            dst.emplace_back("optim.exp_avg." + s.optimizer->params()[i].first, &s.optimizer->exp_avg()[i]);
            dst.emplace_back("optim.exp_avg_sq." + s.optimizer->params()[i].first, &s.optimizer->exp_avg_sq()[i]);
        }
        copy_checked(dst, st, "optim.", origin);
        s.optimizer->set_steps(o.at("t").get<int64_t>());
    }
    const nlohmann::json rng = meta_json(st, "rng", origin);
    for (auto& [name, g] : s.generators) {
        if (!rng.contains(name)) throw FormatError(fmt::format("{}: no state for random stream '{}'", origin, name));
        g->set_state(rng[name].at("seed").get<uint64_t>(), rng[name].at("offset").get<uint64_t>());
    }
    auto step = st.metadata.find("step");
    if (step == st.metadata.end()) throw FormatError(origin + ": __metadata__ has no 'step'");
    s.step = std::stoll(step->second);
    s.extra = meta_json(st, "extra", origin);
}

std::unique_ptr<UNet> load_model(const std::string& path, bool use_ema, bool* used_ema) {
    SafeTensors st = load_safetensors(path);
    UNetConfig cfg = checkpoint_config(st, path);
    const DType dt = st.at("model.conv_in.weight").dtype();
    auto model = std::make_unique<UNet>(cfg, InitScheme::DDPM, 0, dt);
    const bool ema = use_ema && st.contains("ema.conv_in.weight");
    load_state_dict(*model, st, ema ? "ema." : "model.", path);
    if (used_ema) *used_ema = ema;
    return model;
}

}  // namespace ddpm
