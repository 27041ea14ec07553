// `ddpm fid`: the Fréchet distance against closed forms, the classifier's loss and
// gradient, the label readers, and the refusals of bad sample files.
#include <filesystem>
#include <fstream>

#include "app/data.h"
#include "app/fid.h"
#include "tensor/elementwise.h"
#include "app/npy.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "helpers.h"
#include "nn/optim.h"
#include "tensor/random.h"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {
// A random rotation Q (n x n, row-major) from the QR-like Gram-Schmidt of a Gaussian matrix.
std::vector<double> random_rotation(int64_t n, Generator& gen) {
    Tensor g = randn({n, n}, gen, DType::F64);
    std::vector<double> q = g.to_vector();
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < i; ++j) {
            double d = 0;
            for (int64_t k = 0; k < n; ++k) d += q[i * n + k] * q[j * n + k];
            for (int64_t k = 0; k < n; ++k) q[i * n + k] -= d * q[j * n + k];
        }
        double norm = 0;
        for (int64_t k = 0; k < n; ++k) norm += q[i * n + k] * q[i * n + k];
        for (int64_t k = 0; k < n; ++k) q[i * n + k] /= std::sqrt(norm);
    }
    return q;
}

// Q^T diag(d) Q.
std::vector<double> rotated_diag(const std::vector<double>& q, const std::vector<double>& d, int64_t n) {
    std::vector<double> s(static_cast<size_t>(n * n), 0.0);
    for (int64_t k = 0; k < n; ++k)
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < n; ++j) s[i * n + j] += q[k * n + i] * d[k] * q[k * n + j];
    return s;
}
}  // namespace

TEST_CASE("Fréchet distance: covariances sharing eigenvectors give |mu_a - mu_b|^2 + sum (sqrt a_i - sqrt b_i)^2") {
    Generator gen(3);
    const int64_t n = 24;
    const std::vector<double> q = random_rotation(n, gen);
    std::vector<double> da, db, ma, mb;
    double want = 0;
    for (int64_t i = 0; i < n; ++i) {
        da.push_back(0.1 + i), db.push_back(2.0 + 0.5 * i * i), ma.push_back(0.1 * i), mb.push_back(-0.2 * i);
        want += (ma[i] - mb[i]) * (ma[i] - mb[i]) + (std::sqrt(da[i]) - std::sqrt(db[i])) * (std::sqrt(da[i]) - std::sqrt(db[i]));
    }
    FeatureStats a{n, 1000, ma, rotated_diag(q, da, n)}, b{n, 1000, mb, rotated_diag(q, db, n)};
    CHECK(frechet_distance(a, b) == doctest::Approx(want).epsilon(1e-9));
    CHECK(frechet_distance(b, a) == doctest::Approx(want).epsilon(1e-9));
    CHECK(std::abs(frechet_distance(a, a)) < 1e-8);
    // One-dimensional: (m_a - m_b)^2 + (s_a - s_b)^2 for standard deviations s.
    FeatureStats x{1, 10, {1.0}, {4.0}}, y{1, 10, {-2.0}, {9.0}};
    CHECK(frechet_distance(x, y) == doctest::Approx(9.0 + 1.0));
}

TEST_CASE("symmetric_eigen returns the eigenvalues and eigenvectors of a symmetric matrix") {
    Generator gen(4);
    const int64_t n = 6;
    const std::vector<double> q = random_rotation(n, gen), d = {-3, -1, 0.5, 2, 7, 11};
    std::vector<double> a = rotated_diag(q, d, n), w;
    symmetric_eigen(a, n, w);
    for (int64_t i = 0; i < n; ++i) CHECK(w[i] == doctest::Approx(d[i]).epsilon(1e-12));
}

TEST_CASE("feature statistics: the mean and the unbiased covariance") {
    Tensor f = Tensor::from_data({1, 2, 3, 6, 5, 10}, {3, 2}, DType::F64);
    FeatureStats s = feature_stats(f);
    test::check_values(Tensor::from_data(s.mean, {2}, DType::F64), {3, 6}, 1e-12);
    test::check_values(Tensor::from_data(s.cov, {4}, DType::F64), {4, 8, 8, 16}, 1e-12);
}

TEST_CASE("the feature classifier: cross-entropy's gradient, and a falling loss on Fashion-MNIST") {
    Generator gen(5);
    const std::vector<uint8_t> labels = {0, 2, 1, 2};
    // -log softmax at the label: for logits all zero, log 3.
    CHECK(cross_entropy(Variable(Tensor::zeros({4, 3}, DType::F64)), labels).item() == doctest::Approx(std::log(3.0)));
    GradcheckResult r = gradcheck([&](const std::vector<Variable>& in) { return cross_entropy(in[0], labels); },
                                  {randn({4, 3}, gen, DType::F64)});
    INFO(r.report());
    CHECK(r.worst_rel() <= 1e-6);

    Dataset d = load_dataset("fashion-mnist", Split::Train, 1, 28);
    REQUIRE(d.labels.size() == 60000);
    CHECK(d.class_names[7] == "sneaker");
    Classifier net(1, 28, 10, 8, 32, 0);
    Adam adam(net.named_parameters(), AdamOptions{.lr = 3e-3});
    const Tensor x = dataset_images(d, 0, 256);
    const std::vector<uint8_t> y(d.labels.begin(), d.labels.begin() + 256);
    double first = 0, last = 0;
    for (int step = 0; step < 30; ++step) {
        Variable loss = cross_entropy(net.forward(Variable(x)), y);
        adam.zero_grad();
        loss.backward();
        adam.step();
        (step == 0 ? first : last) = loss.item();
    }
    MESSAGE("cross-entropy on 256 images: " << first << " -> " << last);
    CHECK(first > 2.0);
    CHECK(last < 0.6 * first);
    CHECK(classifier_features(net, x).shape() == Shape{256, 32});
}

TEST_CASE("IDX label files: read, and bad ones refused by name and byte") {
    auto labels = [](uint32_t magic, uint32_t n, std::vector<uint8_t> body) {
        std::string b;
        for (uint32_t v : {magic, n})
            for (int s = 24; s >= 0; s -= 8) b += static_cast<char>((v >> s) & 0xff);
        for (uint8_t v : body) b += static_cast<char>(v);
        return b;
    };
    CHECK(parse_idx_labels(labels(0x801, 3, {0, 9, 4}), "l", 10) == std::vector<uint8_t>{0, 9, 4});
    auto msg = [](const std::string& b) { return test::error_message<DataError>([&] { parse_idx_labels(b, "l", 10); }); };
    CHECK(msg(labels(0x803, 3, {0, 1, 2})).find("l: magic 0x00000803 at byte 0, expected 0x00000801") == 0);
    CHECK(msg(labels(0x801, 4, {0, 1, 2})).find("l: header promises 4 labels but 3 bytes follow it") == 0);
    CHECK(msg(labels(0x801, 3, {0, 10, 2})).find("l: label 10 of image 1 (byte 9) is not below 10") == 0);
    CHECK(msg("abc").find("l: 3 bytes, shorter than the 8-byte IDX label header") == 0);
}

TEST_CASE("samples to score: a wrong shape or NaNs in an .npy, or an empty folder, are refused by name") {
    const fs::path dir = test::fresh_dir("fid", "samples");
    auto msg = [&](const std::string& p) {
        return test::error_message<std::runtime_error>([&] { load_sample_images(p, 1, 28); });
    };
    write_npy((dir / "shape.npy").string(), Tensor::zeros({4, 1, 32, 32}));
    CHECK(msg((dir / "shape.npy").string()).find("shape [4,1,32,32] is not (N, 1, 28, 28)") != std::string::npos);
    Tensor nan = Tensor::zeros({4, 1, 28, 28});
    nan.set_flat(7, NAN);
    write_npy((dir / "nan.npy").string(), nan);
    CHECK(msg((dir / "nan.npy").string()).find("element 7 is nan") != std::string::npos);
    fs::create_directories(dir / "empty");
    CHECK(msg((dir / "empty").string()).find("no PNG images in this folder") != std::string::npos);
    write_npy((dir / "f64.npy").string(), Tensor::zeros({4, 1, 28, 28}));
    {  // the same file saying float64
        std::ifstream in((dir / "f64.npy").string(), std::ios::binary);
        std::string b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        b.replace(b.find("<f4"), 3, "<f8");
        std::ofstream((dir / "f64.npy").string(), std::ios::binary) << b;
    }
    CHECK(msg((dir / "f64.npy").string()).find("only little-endian float32") != std::string::npos);
}

TEST_CASE("class agreement: the share of images the classifier puts in the class they were asked for") {
    Classifier net(1, 28, 10, 8, 16, 3);
    Generator gen(4);
    const Tensor x = ddpm::clamp(randn({40, 1, 28, 28}, gen), -1.0, 1.0);
    const std::vector<int64_t> predicted = classify(net, x, 7);  // batches of 7: the split must not matter
    CHECK(predicted == classify(net, x));
    Tensor asked({40}, DType::F32);
    for (int64_t i = 0; i < 40; ++i) asked.set_flat(i, double(i < 30 ? predicted[i] : (predicted[i] + 1) % 10));
    const ClassAgreement a = class_agreement(net, x, asked);
    CHECK(a.total_asked == 40);
    CHECK(a.total_agreed == 30);
    int64_t asked_sum = 0, agreed_sum = 0;
    for (size_t k = 0; k < 10; ++k) asked_sum += a.asked[k], agreed_sum += a.agreed[k];
    CHECK(asked_sum == 40);
    CHECK(agreed_sum == 30);
    CHECK(test::error_message<std::runtime_error>([&] { class_agreement(net, x, asked.slice(0, 39)); }).find("labels f32[39] for 40 images") !=
          std::string::npos);
    asked.set_flat(5, 10);
    CHECK(test::error_message<std::runtime_error>([&] { class_agreement(net, x, asked); }).find("label 10 of image 5 is not a class in [0, 10)") !=
          std::string::npos);
}
