// config.cpp
#include "nn/config.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <stdexcept>

namespace ddpm {

UNetConfig UNetConfig::preset(const std::string& name) {
    UNetConfig c;
    c.name = name;
    if (name == "tiny") {
        c.channels = 16, c.ch_mult = {1, 2}, c.num_res_blocks = 1, c.attn_resolutions = {14}, c.dropout = 0.0;
    } else if (name == "small") {
        // the defaults
    } else if (name == "cifar10") {
        c.in_channels = c.out_channels = 3, c.image_size = 32, c.channels = 128, c.ch_mult = {1, 2, 2, 2};
        c.attn_resolutions = {16}, c.groups = 32;
    } else {
        throw std::invalid_argument(fmt::format("unknown config '{}' (presets: tiny, small, cifar10)", name));
    }
    return c;
}

bool UNetConfig::is_preset(const std::string& name) {
    return name == "tiny" || name == "small" || name == "cifar10";
}

UNetConfig UNetConfig::from_json(const nlohmann::json& j) {
    if (!j.is_object()) throw std::invalid_argument("config: expected a JSON object");
    static const char* known[] = {"name", "in_channels", "out_channels", "image_size", "channels", "ch_mult",
                                  "num_res_blocks", "attn_resolutions", "groups", "dropout", "heads", "gn_eps"};
    for (auto it = j.begin(); it != j.end(); ++it) {
        bool ok = false;
        for (const char* k : known) ok = ok || it.key() == k;
        if (!ok) throw std::invalid_argument(fmt::format("config: unknown field '{}'", it.key()));
    }
    UNetConfig c;
    auto get = [&](const char* key, auto& field) {
        if (!j.contains(key)) return;
        try {
            j.at(key).get_to(field);
        } catch (const nlohmann::json::exception&) {
            throw std::invalid_argument(fmt::format("config: field '{}' has the wrong type ({})", key,
                                                    j.at(key).dump()));
        }
    };
    get("name", c.name);
    get("in_channels", c.in_channels);
    get("out_channels", c.out_channels);
    get("image_size", c.image_size);
    get("channels", c.channels);
    get("ch_mult", c.ch_mult);
    get("num_res_blocks", c.num_res_blocks);
    get("attn_resolutions", c.attn_resolutions);
    get("groups", c.groups);
    get("dropout", c.dropout);
    get("heads", c.heads);
    get("gn_eps", c.gn_eps);
    c.validate();
    return c;
}

nlohmann::json UNetConfig::to_json() const {
    return {{"name", name},
            {"in_channels", in_channels},
            {"out_channels", out_channels},
            {"image_size", image_size},
            {"channels", channels},
            {"ch_mult", ch_mult},
            {"num_res_blocks", num_res_blocks},
            {"attn_resolutions", attn_resolutions},
            {"groups", groups},
            {"dropout", dropout},
            {"heads", heads},
            {"gn_eps", gn_eps}};
}

UNetConfig UNetConfig::load(const std::string& name_or_path) {
    if (is_preset(name_or_path)) return preset(name_or_path);
    std::ifstream in(name_or_path);
    if (!in)
        throw std::invalid_argument(
            fmt::format("config '{}' is neither a preset (tiny, small, cifar10) nor a readable file", name_or_path));
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        throw std::invalid_argument(fmt::format("config {}: bad JSON at byte {}: {}", name_or_path, e.byte, e.what()));
    }
    try {
        return from_json(j);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("{}: {}", name_or_path, e.what()));
    }
}

void UNetConfig::validate() const {
    auto bad = [](const std::string& what) { throw std::invalid_argument("config: " + what); };
    auto positive = [&](const char* field, int64_t v, int64_t limit) {
        if (v <= 0 || v > limit) bad(fmt::format("{} = {} must be in [1, {}]", field, v, limit));
    };
    positive("in_channels", in_channels, 64);
    positive("out_channels", out_channels, 128);
    positive("image_size", image_size, 4096);
    positive("channels", channels, 4096);
    positive("num_res_blocks", num_res_blocks, 64);
    positive("groups", groups, 4096);
    positive("heads", heads, 4096);
    if (ch_mult.empty() || ch_mult.size() > 8) bad("ch_mult must have 1 to 8 levels");
    for (int64_t m : ch_mult) positive("ch_mult entry", m, 64);
    if (image_size % (int64_t{1} << (ch_mult.size() - 1)) != 0)
        bad(fmt::format("image_size {} is not divisible by 2^{} (one halving per level after the first)", image_size,
                        ch_mult.size() - 1));
    if (channels % 2 != 0) bad(fmt::format("channels = {} must be even (sinusoidal embedding)", channels));
    for (int64_t m : ch_mult)
        if ((channels * m) % groups != 0)
            bad(fmt::format("level width {} is not divisible into {} groups", channels * m, groups));
    if (channels % groups != 0) bad(fmt::format("channels {} not divisible into {} groups", channels, groups));
    for (int64_t m : ch_mult)
        if ((channels * m) % heads != 0 && !attn_resolutions.empty())
            bad(fmt::format("level width {} is not divisible into {} heads", channels * m, heads));
    if (!(dropout >= 0.0 && dropout < 1.0)) bad(fmt::format("dropout = {} must be in [0, 1)", dropout));
    if (!(gn_eps > 0.0 && std::isfinite(gn_eps))) bad(fmt::format("gn_eps = {} must be positive", gn_eps));
}

}  // namespace ddpm
