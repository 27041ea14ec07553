// config.cpp
#include "nn/config.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <stdexcept>
#include <type_traits>

namespace ddpm {

UNetConfig UNetConfig::preset(const std::string& name) {
    UNetConfig c;
    c.name = name;
    if (name == "tiny") {
        c.channels = 16, c.ch_mult = {1, 2}, c.num_res_blocks = 1, c.attn_resolutions = {14}, c.dropout = 0.0;
    } else if (name == "mini") {
        // tiny's width with a third level (7x7) holding the attention: more parameters, and
        // faster, since attention over 49 positions costs 1/16 of attention over 196.
        c.channels = 16, c.ch_mult = {1, 2, 2}, c.num_res_blocks = 1, c.attn_resolutions = {7}, c.dropout = 0.0;
    } else if (name == "small") {
        // the defaults
    } else if (name == "cifar10") {
        c.in_channels = c.out_channels = 3, c.image_size = 32, c.channels = 128, c.ch_mult = {1, 2, 2, 2};
        c.attn_resolutions = {16}, c.groups = 32;
    } else {
        throw std::invalid_argument(fmt::format("unknown config '{}' (presets: tiny, mini, small, cifar10)", name));
    }
    return c;
}

bool UNetConfig::is_preset(const std::string& name) {
    return name == "tiny" || name == "mini" || name == "small" || name == "cifar10";
}

UNetConfig UNetConfig::from_json(const nlohmann::json& j) {
    UNetConfig c;
    fields_from_json(c, j, "config", /*all_optional=*/true);
    c.validate();
    return c;
}

nlohmann::json UNetConfig::to_json() const { return fields_to_json(*this); }

UNetConfig UNetConfig::parse(const std::string& text, const std::string& origin) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        throw std::invalid_argument(fmt::format("config {}: bad JSON at byte {}: {}", origin, e.byte, e.what()));
    } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for a double
        throw std::invalid_argument(fmt::format("config {}: unusable JSON: {}", origin, e.what()));
    }
    try {
        return from_json(j);
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(fmt::format("{}: {}", origin, e.what()));
    }
}

UNetConfig UNetConfig::load(const std::string& name_or_path) {
    if (is_preset(name_or_path)) return preset(name_or_path);
    std::ifstream in(name_or_path, std::ios::binary);
    if (!in)
        throw std::invalid_argument(
            fmt::format("config '{}' is neither a preset (tiny, mini, small, cifar10) nor a readable file", name_or_path));
    std::string text;
    char buf[4096];
    while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
        text.append(buf, static_cast<size_t>(in.gcount()));
        if (text.size() > (size_t(1) << 20))
            throw std::invalid_argument(fmt::format("config {}: more than 1 MiB, not a config file", name_or_path));
    }
    return parse(text, name_or_path);
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
    for (int64_t r : attn_resolutions)
        if (r <= 0 || r > image_size) bad(fmt::format("attention resolution {} is not in [1, image_size]", r));
    if (num_classes < 0 || num_classes > 4096) bad(fmt::format("num_classes = {} must be in [0, 4096]", num_classes));
    if (!class_names.empty() && int64_t(class_names.size()) != num_classes)
        bad(fmt::format("{} class_names for num_classes = {}", class_names.size(), num_classes));
    // Not absurd: the 3x3 convs of all levels (down and up paths) under 2^31 weights.
    double conv_weights = 0;
    for (int64_t m : ch_mult) conv_weights += 2.0 * (2 * num_res_blocks + 2) * 9.0 * double(channels * m) * double(channels * m);
    if (conv_weights > double(int64_t{1} << 31))
        bad(fmt::format("about {:.3g} weights (channels {} x ch_mult, {} res blocks) is more than 2^31", conv_weights,
                        channels, num_res_blocks));
}

std::string UNetConfig::class_name(int64_t k) const {
    return k >= 0 && k < int64_t(class_names.size()) ? class_names[k] : std::to_string(k);
}

int64_t UNetConfig::class_index(const std::string& key) const {
    if (num_classes == 0) throw std::invalid_argument(fmt::format("the '{}' model is unconditional (num_classes = 0): it takes no class", name));
    for (int64_t k = 0; k < num_classes; ++k)
        if (class_name(k) == key || std::to_string(k) == key) return k;
    std::string valid;
    for (int64_t k = 0; k < num_classes; ++k) {
        valid += fmt::format("{}{}", k ? ", " : "", k);
        if (k < int64_t(class_names.size())) valid += fmt::format(" {}", class_names[k]);
    }
    throw std::invalid_argument(fmt::format("unknown class '{}'; the model's classes are: {}", key, valid));
}

}  // namespace ddpm
