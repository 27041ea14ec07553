// The U-Net: exact parameter counts, names, shapes, initialisation, and a
// whole-network gradient check in float64.
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "helpers.h"
#include "nn/checkpoint.h"
#include "nn/trace.h"
#include "nn/unet.h"
#include "tensor/elementwise.h"

using namespace ddpm;

TEST_CASE("parameter counts match the reference configurations exactly") {
    CHECK(UNet(UNetConfig::preset("tiny")).num_parameters() == 176849);
    CHECK(UNet(UNetConfig::preset("mini")).num_parameters() == 280177);  // as bench/torch_unet.py's twin counts it
    CHECK(UNet(UNetConfig::preset("small")).num_parameters() == 1623169);
    CHECK(UNet(UNetConfig::preset("cifar10")).num_parameters() == 35746307);
}

TEST_CASE("parameters have dotted hierarchical names in PyTorch layouts") {
    UNet net(UNetConfig::preset("small"));
    std::map<std::string, Shape> shapes;
    for (auto& [name, v] : net.named_parameters()) shapes[name] = v.shape();
    CHECK(shapes.at("time_embed.0.weight") == Shape{128, 32});
    CHECK(shapes.at("conv_in.weight") == Shape{32, 1, 3, 3});
    CHECK(shapes.at("down.1.block.0.conv1.weight") == Shape{64, 32, 3, 3});
    CHECK(shapes.at("down.1.block.0.skip.weight") == Shape{64, 32, 1, 1});
    CHECK(shapes.at("down.1.attn.1.q.weight") == Shape{64, 64, 1, 1});
    CHECK(shapes.at("down.0.downsample.conv.weight") == Shape{32, 32, 3, 3});
    CHECK(shapes.at("mid.attn_1.proj_out.weight") == Shape{64, 64, 1, 1});
    CHECK(shapes.at("up.2.block.0.conv1.weight") == Shape{64, 128, 3, 3});
    CHECK(shapes.at("up.0.block.2.skip.weight") == Shape{32, 64, 1, 1});
    CHECK(shapes.at("up.1.upsample.conv.weight") == Shape{64, 64, 3, 3});
    CHECK(shapes.at("conv_out.weight") == Shape{1, 32, 3, 3});
    CHECK(shapes.count("down.0.attn.0.q.weight") == 0);  // no attention at 28x28
    CHECK(shapes.count("up.0.upsample.conv.weight") == 0);
}

TEST_CASE("initialisation: variance scaling, zeroed output convs, reproducible from the seed") {
    UNet a(UNetConfig::preset("tiny"), InitScheme::DDPM, 7), b(UNetConfig::preset("tiny"), InitScheme::DDPM, 7);
    UNet c(UNetConfig::preset("tiny"), InitScheme::DDPM, 8);
    auto pa = a.named_parameters(), pb = b.named_parameters(), pc = c.named_parameters();
    bool same = true, differs = false;
    for (size_t i = 0; i < pa.size(); ++i) {
        same = same && std::memcmp(pa[i].second.data().raw_data(), pb[i].second.data().raw_data(),
                                   pa[i].second.data().nbytes()) == 0;
        differs = differs || std::memcmp(pa[i].second.data().raw_data(), pc[i].second.data().raw_data(),
                                         pa[i].second.data().nbytes()) != 0;
    }
    CHECK(same);
    CHECK(differs);
    std::map<std::string, Tensor> p;
    for (auto& [name, v] : pa) p[name] = v.data();
    auto max_abs = [](const Tensor& t) {
        double m = 0;
        for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::abs(t.flat(i)));
        return m;
    };
    CHECK(max_abs(p.at("conv_out.weight")) == 0);
    CHECK(max_abs(p.at("down.0.block.0.conv2.weight")) == 0);
    CHECK(max_abs(p.at("mid.attn_1.proj_out.weight")) == 0);
    CHECK(max_abs(p.at("conv_in.bias")) == 0);
    CHECK(max_abs(p.at("mid.attn_1.norm.weight")) == 1);
    // conv1 of down.0.block.0: fan_in = fan_out = 16*9, limit sqrt(3/144) = 0.1443.
    const Tensor& w = p.at("down.0.block.0.conv1.weight");
    CHECK(max_abs(w) <= std::sqrt(3.0 / 144.0));
    CHECK(max_abs(w) > 0.9 * std::sqrt(3.0 / 144.0));
    double ss = 0;
    for (int64_t i = 0; i < w.numel(); ++i) ss += w.flat(i) * w.flat(i);
    CHECK(ss / w.numel() == doctest::Approx(1.0 / 144.0).epsilon(0.1));  // variance a^2/3 = 1/fan_avg
    UNet torch_init(UNetConfig::preset("tiny"), InitScheme::PyTorch, 7);
    for (auto& [name, v] : torch_init.named_parameters())
        if (name == "conv_in.bias") CHECK(max_abs(v.data()) > 0);  // PyTorch draws biases too
}

TEST_CASE("forward shapes, and a fresh network predicts zero") {
    UNet net(UNetConfig::preset("tiny"));
    Generator gen(1);
    Variable x(randn({3, 1, 28, 28}, gen));
    Tensor t = Tensor::from_data({0, 500, 999}, {3});
    Variable y = net.forward(x, t);
    CHECK(y.shape() == Shape{3, 1, 28, 28});
    double m = 0;
    for (int64_t i = 0; i < y.numel(); ++i) m = std::max(m, std::abs(y.data().flat(i)));
    CHECK(m == 0);  // conv_out starts at zero
    CHECK_THROWS_WITH_AS(net.forward(Variable(Tensor::zeros({2, 3, 28, 28})), Tensor::zeros({2})),
                         "unet: input f32[2,3,28,28] but the 'tiny' config takes [B,1,28,28]", TensorError);
}

TEST_CASE("configs: presets, JSON round trip, and errors that name the field") {
    UNetConfig c = UNetConfig::preset("cifar10");
    UNetConfig back = UNetConfig::from_json(c.to_json());
    CHECK(back.to_json() == c.to_json());
    CHECK_THROWS_WITH_AS(UNetConfig::preset("huge"), "unknown config 'huge' (presets: tiny, mini, small, cifar10)",
                         std::invalid_argument);
    nlohmann::json j = c.to_json();
    j["groups"] = 7;
    CHECK_THROWS_AS(UNetConfig::from_json(j), std::invalid_argument);
    j = c.to_json();
    j["chanels"] = 3;
    CHECK_THROWS_WITH_AS(UNetConfig::from_json(j), "config: unknown field 'chanels'", std::invalid_argument);
    j = c.to_json();
    j["dropout"] = "high";
    CHECK_THROWS_AS(UNetConfig::from_json(j), std::invalid_argument);
    j = c.to_json();
    j["image_size"] = 30;  // not divisible by 2^3
    CHECK_THROWS_AS(UNetConfig::from_json(j), std::invalid_argument);
}

// 8 base channels, ch_mult (1, 2), one res block, attention at 4x4 (two heads)
// and in the middle, groups 4, dropout on, input 2x1x8x8, conditioned on 3 classes
// (one image of class 2, one "no class": the class embedding's rows get gradients too).
static void check_unet_gradients(bool scale_shift_norm) {
    UNetConfig c;
    c.name = "gradcheck";
    c.image_size = 8, c.channels = 8, c.ch_mult = {1, 2}, c.num_res_blocks = 1, c.attn_resolutions = {4};
    c.groups = 4, c.dropout = 0.1, c.heads = 2, c.num_classes = 3, c.scale_shift_norm = scale_shift_norm;
    UNet net(c, InitScheme::DDPM, 3, DType::F64);
    // Re-draw every parameter so that no gradient is trivially zero (the zero-initialised
    // output convs would otherwise block everything upstream).
    Generator gen(5);
    for (auto& [name, v] : net.named_parameters()) {
        fill_normal(v.data(), gen, 0.0, 0.4);
        if (name.find("norm") != std::string::npos && name.find("weight") != std::string::npos)
            v.data().copy_(add_scalar(v.data(), 1.0));
    }
    Variable x(randn({2, 1, 8, 8}, gen, DType::F64), true);
    Tensor t = Tensor::from_data({3, 700}, {2}, DType::F64), y = Tensor::from_data({2, 3}, {2}, DType::F64);
    auto f = [&] {
        net.dropout_generator().set_state(11, 0);  // the same dropout masks on every call
        return net.forward(x, t, y);
    };
    std::vector<Variable> leaves{x};
    std::vector<std::string> names{"input"};
    for (auto& [name, v] : net.named_parameters()) {
        leaves.push_back(v);
        names.push_back(name);
    }
    GradcheckOptions opt;
    opt.max_elements = 4;  // a random subset of each tensor
    opt.eps = 1e-5;        // the output is O(10): a larger step keeps round-off below 1e-9
    GradcheckResult r = gradcheck_leaves(f, leaves, opt);
    double worst = 0;
    for (size_t i = 0; i < leaves.size(); ++i)
        if (!names[i].ends_with(".k.bias")) worst = std::max(worst, r.max_rel_error[i]);
    MESSAGE(leaves.size() << " tensors checked, worst relative error " << worst);
    for (size_t i = 0; i < leaves.size(); ++i) {
        INFO(names[i] << ": abs " << r.max_abs_error[i] << " rel " << r.max_rel_error[i]);
        if (names[i].ends_with(".k.bias")) {
            // q.(k + b) shifts every score of a query by the same q.b, which softmax
            // ignores: this gradient is exactly zero, so only an absolute check makes sense.
            CHECK(r.max_abs_error[i] < 1e-7);
            CHECK(std::abs(leaves[i].grad().flat(0)) < 1e-9);
        } else {
            CHECK(r.max_rel_error[i] <= 1e-5);
        }
    }
    CHECK(leaves.size() > 60);
    CHECK(names.back() == "label_emb.weight");
}

TEST_CASE("whole-network gradient check in float64") { check_unet_gradients(false); }

TEST_CASE("whole-network gradient check in float64, the timestep as a scale and shift of the norm") {
    check_unet_gradients(true);
}

TEST_CASE("scale_shift_norm: temb_proj gives 2C values, a fresh block still starts as the identity") {
    UNetConfig c = UNetConfig::preset("mini");
    const int64_t plain = UNet(c).num_parameters();
    c.scale_shift_norm = true;
    UNet net(c);
    // Each ResBlock's temb_proj (4C -> C_out) doubles its outputs: weight and bias.
    int64_t extra = 0;
    for (auto& [name, v] : net.named_parameters())
        if (name.find("temb_proj") != std::string::npos) extra += v.data().numel() / 2;
    CHECK(net.num_parameters() == plain + extra);
    for (auto& [name, v] : net.named_parameters())
        if (name == "mid.block_1.temb_proj.weight") CHECK(v.data().size(0) == 2 * 32);
    CHECK(UNetConfig::from_json(c.to_json()).scale_shift_norm);
    // The scale and shift must be one row of channels per image.
    Initializer init(InitScheme::DDPM, 0);
    GroupNorm gn(2, 4, init);
    Generator gen(1);
    const Variable x(randn({2, 4, 3, 3}, gen)), s(randn({2, 3}, gen));
    CHECK(test::error_message<TensorError>([&] { gn.forward_scale_shift_silu(x, s, s); })
              .find("scale f32[2,3] and shift f32[2,3] for input f32[2,4,3,3]") != std::string::npos);
    CHECK_FALSE(UNetConfig::from_json(UNetConfig::preset("mini").to_json()).scale_shift_norm);
    // conv2 starts at zero, so a fresh scale-shift block (in = out) returns its input exactly.
    ResBlock block(8, 8, 16, 2, 0.0, 1e-5, init, /*scale_shift=*/true);
    const Variable h(randn({2, 8, 5, 5}, gen)), temb(randn({2, 16}, gen));
    NoGradGuard ng;
    CHECK(test::max_abs_diff(block.forward(h, temb, gen).data(), h.data()) == 0);
}

TEST_CASE("class conditioning: a (K + 1)-row embedding added to the timestep embedding, labels checked") {
    UNetConfig c = UNetConfig::preset("tiny");
    const int64_t plain = UNet(c).num_parameters();
    c.num_classes = 10;
    UNet net(c);
    CHECK(net.num_parameters() == plain + 11 * 4 * c.channels);  // 10 classes and "no class", width 4C
    CHECK(net.null_label() == 10);
    // Labels change the output once the zero-initialised convs are not zero; no labels means "no class".
    Generator gen(3);
    for (auto& [name, v] : net.named_parameters())
        if (name.find("norm") == std::string::npos) fill_normal(v.data(), gen, 0.0, 0.1);
    NoGradGuard ng;
    const Variable x(randn({2, 1, 28, 28}, gen));
    const Tensor t = Tensor::from_data({5, 500}, {2});
    const Tensor none = net.forward(x, t).data(), null = net.forward(x, t, Tensor::from_data({10, 10}, {2})).data();
    CHECK(test::max_abs_diff(none, null) == 0);
    CHECK(test::max_abs_diff(none, net.forward(x, t, Tensor::from_data({3, 7}, {2})).data()) > 1e-4);
    CHECK(test::error_message<TensorError>([&] { net.forward(x, t, Tensor::from_data({11, 0}, {2})); }).find("not a row") !=
          std::string::npos);
    CHECK(test::error_message<TensorError>([&] { net.forward(x, t, Tensor::from_data({1}, {1})); }).find("labels f32[1] for a batch of 2") !=
          std::string::npos);
    UNet uncond(UNetConfig::preset("tiny"));
    CHECK(test::error_message<TensorError>([&] { uncond.forward(x, t, Tensor::from_data({1, 2}, {2})); })
              .find("class labels given to the unconditional 'tiny' model") != std::string::npos);
    // Names and numbers pick a class; anything else is refused with the valid list.
    c.class_names = {"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"};
    CHECK(c.class_index("sneaker") == 7);
    CHECK(c.class_index("3") == 3);
    CHECK(test::error_message<std::invalid_argument>([&] { c.class_index("hat"); })
              .find("unknown class 'hat'; the model's classes are: 0 t-shirt, 1 trouser,") == 0);
    CHECK(test::error_message<std::invalid_argument>([&] { UNetConfig::preset("tiny").class_index("3"); })
              .find("unconditional") != std::string::npos);
    nlohmann::json j = c.to_json();
    CHECK(UNetConfig::from_json(j).class_names == c.class_names);
    j["class_names"] = {"a", "b"};
    CHECK(test::error_message<std::invalid_argument>([&] { UNetConfig::from_json(j); }).find("2 class_names for num_classes = 10") !=
          std::string::npos);
}

TEST_CASE("a layer trace lists every conv with its FLOPs") {
    UNet net(UNetConfig::preset("small"));
    NoGradGuard no_grad;
    LayerTrace trace;
    net.forward(Variable(Tensor::zeros({1, 1, 28, 28})), Tensor::zeros({1}));
    double flops = 0;
    for (const LayerRecord& r : trace.records()) flops += r.flops;
    MESSAGE("small: " << flops / 1e9 << " GFLOP per image forward");
    CHECK(flops / 1e9 == doctest::Approx(0.6246).epsilon(1e-3));
}

// The fixture holds a PyTorch twin's random weights (in PyTorch's layouts and
// names), an input, timesteps, its output and the input gradient of sum(y * g).
static void check_against_torch_fixture(const std::string& file) {
    SafeTensors st = load_safetensors(DDPM_SOURCE_DIR "/tests/fixtures/" + file);
    UNetConfig cfg = UNetConfig::from_json(nlohmann::json::parse(st.metadata.at("config")));
    UNet net(cfg, InitScheme::DDPM, 0, DType::F64);
    load_state_dict(net, st, "model.", "fixture");
    Variable x(st.at("x"), true);
    Variable y = net.forward(x, st.at("t"));
    CHECK(test::max_abs_diff(y.data(), st.at("y")) < 1e-10);
    y.backward(st.at("g"));
    CHECK(test::max_abs_diff(x.grad(), st.at("dx")) < 1e-10);
    // In float32 the same weights agree to float32 rounding.
    UNet net32(cfg, InitScheme::DDPM, 0, DType::F32);
    for (auto& [name, p] : net32.named_parameters()) p.data().copy_(st.at("model." + name).to(DType::F32));
    Variable y32 = net32.forward(Variable(st.at("x").to(DType::F32)), st.at("t").to(DType::F32));
    CHECK(test::max_abs_diff(y32.data().to(DType::F64), st.at("y")) < 1e-4);
}

TEST_CASE("the U-Net matches PyTorch number for number (fixture from tests/fixtures/make_unet_fixture.py)") {
    check_against_torch_fixture("unet_torch.safetensors");
}

TEST_CASE("the scale-shift U-Net matches PyTorch number for number (the same script's second fixture)") {
    check_against_torch_fixture("unet_torch_scale_shift.safetensors");
}

TEST_CASE("train and eval mode reach every submodule, and dropout acts only in training") {
    UNetConfig c = UNetConfig::preset("tiny");
    c.dropout = 0.5;
    UNet net(c, InitScheme::DDPM, 1);
    Generator gen(2);
    for (auto& [name, p] : net.named_parameters()) fill_normal(p.data(), gen, 0.0, 0.1);  // make conv2 non-zero
    Variable x(randn({2, 1, 28, 28}, gen));
    Tensor t = Tensor::from_data({5, 50}, {2});
    NoGradGuard ng;
    net.eval();
    Tensor a = net.forward(x, t).data(), b = net.forward(x, t).data();
    CHECK(test::max_abs_diff(a, b) == 0);  // deterministic in eval mode
    net.train();
    Tensor c1 = net.forward(x, t).data(), c2 = net.forward(x, t).data();
    CHECK(test::max_abs_diff(c1, c2) > 0);  // fresh dropout masks each call
}
