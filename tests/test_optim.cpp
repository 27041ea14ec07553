// Optimisers, clipping, schedules and EMA against steps worked out by hand.
#include "helpers.h"
#include "nn/ema.h"
#include "nn/optim.h"
#include "tensor/random.h"

using namespace ddpm;

namespace {
// A one-parameter "module" so that optimisers can be driven by hand.
struct Scalar : Module {
    explicit Scalar(double v) { p = register_parameter("p", Tensor::from_data({v}, {1}, DType::F64)); }
    Variable p;
};

double run_adam(AdamOptions o, const std::vector<double>& grads) {
    Scalar s(1.0);
    Adam adam(s.named_parameters(), o);
    for (double g : grads) {
        s.p.set_grad(Tensor::from_data({g}, {1}, DType::F64));
        adam.step();
    }
    return s.p.data().flat(0);
}
}  // namespace

TEST_CASE("Adam: bias-corrected steps worked out by hand") {
    AdamOptions o;
    o.lr = 1e-3;
    // Step 1: m = 0.1 g, v = 0.001 g^2, corrected m = g, v = g^2: p -= lr * g / (|g| + eps).
    CHECK(run_adam(o, {0.5}) == doctest::Approx(1.0 - 1e-3 * 0.5 / (0.5 + 1e-8)).epsilon(1e-15));
    // Step 2 with g = -1: m = 0.9*0.05 - 0.1 = -0.055, v = 0.999*0.00025 + 0.001 = 0.00124975,
    // corrected -0.055/0.19 = -0.28947368 and 0.00124975/0.001999 = 0.62518759: p += 1e-3 * 0.36610354.
    CHECK(run_adam(o, {0.5, -1.0}) == doctest::Approx(0.9993661035424056).epsilon(1e-14));
    CHECK(run_adam(o, {0.5, -1.0, 0.25}) == doctest::Approx(0.9995027942033897).epsilon(1e-14));
    // L2 weight decay adds wd * p to the gradient; AdamW shrinks p by (1 - lr wd) first.
    o.weight_decay = 0.1;
    CHECK(run_adam(o, {0.5, -1.0}) == doctest::Approx(0.9992477515716178).epsilon(1e-14));
    o.decoupled = true;
    CHECK(run_adam(o, {0.5}) == doctest::Approx(1.0 * (1 - 1e-4) - 1e-3 * 0.5 / (0.5 + 1e-8)).epsilon(1e-15));
    CHECK(run_adam(o, {0.5, -1.0}) == doctest::Approx(0.9991662135424036).epsilon(1e-14));
}

TEST_CASE("Adam over a long float parameter: the vectorised update agrees with the formula element by element") {
    // 1,037 weights: whole vectors and a ragged tail, in both kinds of weight decay.
    for (bool decoupled : {false, true}) {
        Generator gen(7);
        const Tensor w0 = randn({1037}, gen), grads = randn({3, 1037}, gen);
        Variable w(w0.clone(), true);
        AdamOptions o{.lr = 1e-2, .weight_decay = 0.1, .decoupled = decoupled};
        Adam adam({{"w", w}}, o);
        std::vector<double> ref(1037), m(1037, 0.0), v(1037, 0.0);
        for (int64_t j = 0; j < 1037; ++j) ref[j] = w0.flat(j);
        for (int t = 1; t <= 3; ++t) {
            w.set_grad(grads.select(t - 1));
            adam.step();
            const double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.999, t);
            for (int64_t j = 0; j < 1037; ++j) {
                const double g = grads.flat((t - 1) * 1037 + j) + (decoupled ? 0.0 : o.weight_decay * ref[j]);
                if (decoupled) ref[j] *= 1 - o.lr * o.weight_decay;
                m[j] = 0.9 * m[j] + 0.1 * g;
                v[j] = 0.999 * v[j] + 0.001 * g * g;
                ref[j] -= o.lr * (m[j] / bc1) / (std::sqrt(v[j] / bc2) + o.eps);
            }
        }
        for (int64_t j = 0; j < 1037; ++j) REQUIRE(w.data().flat(j) == doctest::Approx(ref[j]).epsilon(1e-5));
    }
}

TEST_CASE("Adam leaves a parameter without a gradient alone") {
    Scalar s(2.0);
    Adam adam(s.named_parameters(), AdamOptions{});
    adam.step();
    CHECK(s.p.data().flat(0) == 2.0);
}

TEST_CASE("SGD with momentum, by hand") {
    Scalar s(1.0);
    SGD sgd(s.parameters(), 0.1, 0.9);
    s.p.set_grad(Tensor::from_data({1.0}, {1}, DType::F64));
    sgd.step();  // buf = 1, p = 0.9
    CHECK(s.p.data().flat(0) == doctest::Approx(0.9));
    sgd.step();  // buf = 0.9 + 1 = 1.9, p = 0.71
    CHECK(s.p.data().flat(0) == doctest::Approx(0.71));
    SGD plain(s.parameters(), 0.5, 0.0, 0.2);
    plain.step();  // g = 1 + 0.2 * 0.71 = 1.142, p = 0.71 - 0.571
    CHECK(s.p.data().flat(0) == doctest::Approx(0.139));
}

TEST_CASE("clip_grad_norm scales every gradient by one factor") {
    Variable a(Tensor::zeros({1}, DType::F64), true), b(Tensor::zeros({1}, DType::F64), true);
    a.set_grad(Tensor::from_data({3}, {1}, DType::F64));
    b.set_grad(Tensor::from_data({4}, {1}, DType::F64));
    CHECK(clip_grad_norm({a, b}, 1.0) == doctest::Approx(5.0));
    CHECK(a.grad().flat(0) == doctest::Approx(0.6).epsilon(1e-6));
    CHECK(b.grad().flat(0) == doctest::Approx(0.8).epsilon(1e-6));
    CHECK(clip_grad_norm({a, b}, 10.0) == doctest::Approx(1.0).epsilon(1e-6));  // under the limit: unchanged
    CHECK(a.grad().flat(0) == doctest::Approx(0.6).epsilon(1e-6));
}

TEST_CASE("clip_grad_norm over long float gradients, and a NaN among them") {
    Generator gen(3);
    Variable a(Tensor::zeros({1037}), true), b(Tensor::zeros({5, 7}), true);
    a.set_grad(randn({1037}, gen)), b.set_grad(randn({5, 7}, gen));
    double sum = 0;  // the naive sum of squares in double
    for (const Variable& p : {a, b})
        for (int64_t j = 0; j < p.numel(); ++j) sum += p.grad().flat(j) * p.grad().flat(j);
    const double first = a.grad().flat(0);
    CHECK(clip_grad_norm({a, b}, 1.0) == doctest::Approx(std::sqrt(sum)).epsilon(1e-12));
    CHECK(a.grad().flat(0) == doctest::Approx(first / std::sqrt(sum)).epsilon(1e-6));
    // A NaN makes the norm NaN and leaves every gradient as it was (the trainer then names it).
    Tensor gb = b.grad();  // a handle on the same buffer
    gb.data<float>()[17] = std::nanf("");
    const double before = a.grad().flat(0);
    CHECK(std::isnan(clip_grad_norm({a, b}, 1e-3)));
    CHECK(a.grad().flat(0) == before);
}

TEST_CASE("learning-rate schedules: linear warm-up, then constant or a cosine over the budget") {
    LrSchedule s{1.0, 4, LrSchedule::Kind::Constant};
    CHECK(s.at(0) == 0.25);
    CHECK(s.at(3) == 1.0);
    CHECK(s.at(1000, 0.9) == 1.0);  // the budget does not matter
    LrSchedule c{2.0, 4, LrSchedule::Kind::Cosine};
    CHECK(c.at(1, 0.0) == doctest::Approx(1.0));             // warm-up: 2 * 2/4
    CHECK(c.at(4, 0.0) == doctest::Approx(2.0));
    CHECK(c.at(9, 0.5) == doctest::Approx(1.0));             // half way: (1 + cos(pi/2)) / 2
    CHECK(c.at(9, 0.25) == doctest::Approx(1.0 + std::sqrt(0.5)));  // (1 + cos(pi/4)) / 2 * 2
    CHECK(c.at(1, 0.5) == doctest::Approx(0.5));             // warm-up and decay multiply
    CHECK(c.at(14, 1.0) == doctest::Approx(0.0));
    CHECK(c.at(20, 1.7) == doctest::Approx(0.0));            // past the budget: 0, never negative
}

TEST_CASE("power-function EMA: Karras et al.'s gamma for sigma_rel, and the averaging weights in closed form") {
    CHECK(EMA::gamma_of_sigma_rel(0.10) == doctest::Approx(6.94).epsilon(1e-3));   // their Table: 0.05 -> 16.97, 0.10 -> 6.94
    CHECK(EMA::gamma_of_sigma_rel(0.05) == doctest::Approx(16.97).epsilon(1e-3));
    CHECK_THROWS_WITH_AS(EMA::gamma_of_sigma_rel(0.3), doctest::Contains("outside (0, 0.2887)"), std::invalid_argument);
    // With d_t = (1 - 1/t)^(g + 1), the average after T updates weighs update i by
    // (1 - d_i) (i / T)^(g + 1): the product of the later decays telescopes.
    Scalar s(0.0);
    EMA ema(s.named_parameters(), 0.9);
    ema.set_sigma_rel(0.2);
    const double g = EMA::gamma_of_sigma_rel(0.2);
    const int T = 12;
    double want = 0;
    for (int i = 1; i <= T; ++i) {
        const double theta = std::sin(i) + 0.1 * i, d = std::pow(1.0 - 1.0 / i, g + 1);
        CHECK(ema.current_decay() == doctest::Approx(d));
        s.p.data().set_flat(0, theta);
        ema.update();
        want += (1 - d) * std::pow(double(i) / T, g + 1) * theta;
    }
    CHECK(ema.shadow()[0].flat(0) == doctest::Approx(want).epsilon(1e-12));
}

TEST_CASE("EMA: warm-up decay, averages by hand, swap in and out") {
    Scalar s(0.0);
    EMA ema(s.named_parameters(), 0.9);
    CHECK(ema.current_decay() == doctest::Approx(0.1));  // (1 + 0) / (10 + 0)
    s.p.data().set_flat(0, 10.0);
    ema.update();  // 0.1 * 0 + 0.9 * 10 = 9
    CHECK(ema.shadow()[0].flat(0) == doctest::Approx(9.0));
    CHECK(ema.current_decay() == doctest::Approx(2.0 / 11.0));
    s.p.data().set_flat(0, 20.0);
    ema.update();  // 2/11 * 9 + 9/11 * 20 = 18
    CHECK(ema.shadow()[0].flat(0) == doctest::Approx(18.0));
    for (int i = 0; i < 200; ++i) ema.update();
    CHECK(ema.current_decay() == 0.9);  // capped at decay
    {
        EMA::Scope scope(ema);
        CHECK(s.p.data().flat(0) == doctest::Approx(20.0).epsilon(1e-6));  // the average, now ~20
    }
    CHECK(s.p.data().flat(0) == 20.0);
    EMA plain(s.named_parameters(), 0.99, /*warmup=*/false);
    CHECK(plain.current_decay() == 0.99);
}
