// config.h: the U-Net's hyper-parameters; presets and JSON files.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/fields.h"

namespace ddpm {

struct UNetConfig {
    std::string name = "small";
    int64_t in_channels = 1;
    int64_t out_channels = 1;  // 2 * in_channels for a learned-range variance
    int64_t image_size = 28;
    int64_t channels = 32;     // C, the base width
    std::vector<int64_t> ch_mult = {1, 2, 2};
    int64_t num_res_blocks = 2;
    std::vector<int64_t> attn_resolutions = {14};
    int64_t groups = 8;
    double dropout = 0.1;
    int64_t heads = 1;
    double gn_eps = 1e-5;
    // The timestep enters each ResBlock as a scale and shift of its second group norm,
    // GN(h) (1 + s) + b, instead of as a bias added before it (guide.md §5).
    bool scale_shift_norm = false;
    // Class conditioning (guide.md §16): 0 for an unconditional model; K > 0 adds a learned
    // embedding of K classes and a "no class" row to the timestep embedding.
    int64_t num_classes = 0;
    std::vector<std::string> class_names;  // empty, or one name per class (what the labels mean)

    // The one list of the fields above, for JSON files (util/fields.h).
    template <class Self, class Visit> static void fields(Self& c, Visit&& visit) {
        visit(Field{.key = "name"}, c.name);
        visit(Field{.key = "in_channels"}, c.in_channels);
        visit(Field{.key = "out_channels"}, c.out_channels);
        visit(Field{.key = "image_size"}, c.image_size);
        visit(Field{.key = "channels"}, c.channels);
        visit(Field{.key = "ch_mult"}, c.ch_mult);
        visit(Field{.key = "num_res_blocks"}, c.num_res_blocks);
        visit(Field{.key = "attn_resolutions"}, c.attn_resolutions);
        visit(Field{.key = "groups"}, c.groups);
        visit(Field{.key = "dropout"}, c.dropout);
        visit(Field{.key = "heads"}, c.heads);
        visit(Field{.key = "gn_eps"}, c.gn_eps);
        visit(Field{.key = "scale_shift_norm", .optional = true}, c.scale_shift_norm);
        visit(Field{.key = "num_classes", .optional = true}, c.num_classes);
        visit(Field{.key = "class_names", .optional = true}, c.class_names);
    }

    // "tiny", "mini", "small", "cifar10" (docs/unet.md).
    static UNetConfig preset(const std::string& name);
    static bool is_preset(const std::string& name);
    // A preset name, or a path to a JSON file with the fields above.
    static UNetConfig load(const std::string& name_or_path);
    static UNetConfig parse(const std::string& json_text, const std::string& origin);  // origin names it in errors
    static UNetConfig from_json(const nlohmann::json& j);  // missing fields keep the defaults
    nlohmann::json to_json() const;

    // Throws std::invalid_argument naming the first field that cannot build a network.
    void validate() const;

    // The class index of a name in class_names or of a number in [0, num_classes); otherwise an
    // std::invalid_argument listing the valid ones (or saying the model is unconditional).
    int64_t class_index(const std::string& name_or_number) const;
    std::string class_name(int64_t k) const;  // class_names[k], or the number
};

}  // namespace ddpm
