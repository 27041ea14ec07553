// fid_command.cpp: `ddpm fid`: training and caching the feature classifier, reading the
// images to score, and the calibration table.
#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "app/fid.h"
#include "app/npy.h"
#include "app/run.h"
#include "autograd/ops.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "tensor/elementwise.h"
#include "tensor/shape_ops.h"

namespace ddpm {

namespace fs = std::filesystem;

namespace {
constexpr const char* kFidFormat = "ddpm.cpp/fid/1";

// The images at `idx` of the data, (idx.size(), C, H, W) in [-1, 1].
Tensor gather_images(const Dataset& d, const std::vector<int64_t>& idx) {
    Tensor out(Shape{static_cast<int64_t>(idx.size()), d.channels, d.height, d.width}, DType::F32);
    float* dst = out.data<float>();
    for (size_t i = 0; i < idx.size(); ++i)
        for (int64_t p = 0; p < d.image_bytes(); ++p)
            dst[i * d.image_bytes() + p] = d.pixels[idx[i] * d.image_bytes() + p] / 127.5f - 1.0f;
    return out;
}

double accuracy(Classifier& net, const Dataset& test) {
    const std::vector<int64_t> predicted = classify(net, dataset_images(test, 0, test.n));
    int64_t right = 0;
    for (int64_t i = 0; i < test.n; ++i) right += predicted[static_cast<size_t>(i)] == test.labels[static_cast<size_t>(i)];
    return double(right) / double(test.n);
}

// Adam (2e-3, cosine decay to 0), batch 128, cross-entropy, `epochs` passes in a seeded order.
void train_classifier(Classifier& net, const Dataset& train, const Dataset& test, int64_t epochs, uint64_t seed) {
    Adam adam(net.named_parameters(), AdamOptions{.lr = 2e-3});
    const int64_t batch = 128, per_epoch = train.n / batch, total = epochs * per_epoch;
    std::vector<int64_t> order(static_cast<size_t>(train.n));
    std::mt19937_64 rng(seed);
    for (int64_t e = 0, step = 0; e < epochs; ++e) {
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), rng);
        net.train();
        double loss_sum = 0;
        for (int64_t k = 0; k < per_epoch; ++k, ++step) {
            std::vector<int64_t> idx(order.begin() + k * batch, order.begin() + (k + 1) * batch);
            std::vector<uint8_t> labels;
            for (int64_t i : idx) labels.push_back(train.labels[i]);
            Variable loss = cross_entropy(net.forward(Variable(gather_images(train, idx))), labels);
            adam.zero_grad();
            loss.backward();
            adam.set_lr(2e-3 * 0.5 * (1 + std::cos(M_PI * double(step) / double(total))));
            adam.step();
            loss_sum += loss.item();
        }
        fmt::print("epoch {}/{}: training loss {:.4f}, test accuracy {:.2f}%\n", e + 1, epochs, loss_sum / double(per_epoch),
                   100 * accuracy(net, test));
        std::fflush(stdout);
    }
}

}  // namespace

void save_fid_net(const std::string& path, Classifier& net, double scale, const FeatureStats& test, double acc,
                  const std::string& data, int64_t image_size) {
    NamedTensors t = state_dict(net, "classifier.");
    t.emplace_back("stats.mean", Tensor::from_data(test.mean, {test.dim}, DType::F64));
    t.emplace_back("stats.cov", Tensor::from_data(test.cov, {test.dim, test.dim}, DType::F64));
    const nlohmann::json meta = {{"in_channels", net.in_channels}, {"classes", net.classes}, {"width", net.width},
                                 {"hidden", net.hidden}, {"scale", scale},
                                 {"image_size", image_size}, {"data", data}, {"test_accuracy", acc}, {"test_n", test.n}};
    save_safetensors(path, t, {{"format", kFidFormat}, {"fid", meta.dump()}});
}

std::string default_features_path(const std::string& data) {
    std::string name = data;
    for (char& ch : name)
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-') ch = '_';
    return (fs::path("runs") / ("fid_" + name + ".safetensors")).string();
}
FidNet load_fid_net(const std::string& path) {
    if (!fs::exists(path))
        throw std::runtime_error(path + ": no feature classifier yet; make it once with `ddpm fid --train-features`");
    const SafeTensors st = load_safetensors(path);
    if (!st.metadata.count("format") || st.metadata.at("format") != kFidFormat)
        throw FormatError(path + ": not a `ddpm fid` feature file (__metadata__.format is not " + kFidFormat + ")");
    FidNet f;
    try {
        const nlohmann::json m = nlohmann::json::parse(st.metadata.at("fid"));
        f.net = std::make_unique<Classifier>(m.at("in_channels").get<int64_t>(), m.at("image_size").get<int64_t>(),
                                             m.at("classes").get<int64_t>(), m.at("width").get<int64_t>(),
                                             m.at("hidden").get<int64_t>(), 0);
        f.scale = m.at("scale").get<double>();
        f.test_accuracy = m.at("test_accuracy").get<double>();
        f.data = m.at("data").get<std::string>();
        f.test.n = m.at("test_n").get<int64_t>();
        f.image_size = m.at("image_size").get<int64_t>();
    } catch (const std::exception& e) {
        throw FormatError(fmt::format("{}: unusable __metadata__.fid: {}", path, e.what()));
    }
    load_state_dict(*f.net, st, "classifier.", path);
    const Tensor mean = st.at("stats.mean"), cov = st.at("stats.cov");
    f.test.dim = mean.numel();
    f.test.mean = mean.to_vector(), f.test.cov = cov.to_vector();
    if (cov.numel() != f.test.dim * f.test.dim) throw FormatError(path + ": stats.cov is not dim x dim");
    return f;
}

Tensor load_sample_images(const std::string& path, int64_t channels, int64_t size) {
    Tensor x;
    if (fs::is_directory(path)) {
        std::vector<std::string> files;
        for (auto& e : fs::directory_iterator(path))
            if (e.path().extension() == ".png" || e.path().extension() == ".PNG") files.push_back(e.path().string());
        if (files.empty()) throw std::runtime_error(path + ": no PNG images in this folder");
        std::sort(files.begin(), files.end());
        x = Tensor(Shape{static_cast<int64_t>(files.size()), channels, size, size}, DType::F32);
        const int64_t per = channels * size * size;
        for (size_t i = 0; i < files.size(); ++i) {
            const std::vector<uint8_t> px = decode_image(read_file_bytes(files[i], kMaxImageFileBytes), files[i], size, channels);
            for (int64_t p = 0; p < per; ++p) x.data<float>()[i * per + p] = px[p] / 127.5f - 1.0f;
        }
        return x;
    }
    x = read_npy(path);
    if (x.dim() != 4 || x.size(1) != channels || x.size(2) != size || x.size(3) != size)
        throw std::runtime_error(fmt::format("{}: shape {} is not (N, {}, {}, {})", path, shape_str(x.shape()), channels, size, size));
    if (x.size(0) < 2) throw std::runtime_error(fmt::format("{}: {} images; a covariance needs at least 2", path, x.size(0)));
    for (int64_t i = 0; i < x.numel(); ++i)
        if (!std::isfinite(x.data<float>()[i]))
            throw std::runtime_error(fmt::format("{}: element {} is {} (samples must be finite, in [-1, 1])", path, i, x.flat(i)));
    return x;
}

double fid_of(FidNet& f, const Tensor& images) {
    return frechet_distance(feature_stats(classifier_features(*f.net, images, f.scale)), f.test);
}

std::vector<int64_t> classify(Classifier& net, const Tensor& images, int64_t batch) {
    NoGradGuard ng;
    net.eval();
    std::vector<int64_t> out;
    const int64_t n = images.size(0);
    for (int64_t b0 = 0; b0 < n; b0 += batch) {
        const Tensor logits = net.forward(Variable(images.slice(b0, std::min(n, b0 + batch)))).data();
        for (int64_t i = 0; i < logits.size(0); ++i) {
            int64_t best = 0;
            for (int64_t k = 1; k < logits.size(1); ++k)
                if (logits.flat(i * logits.size(1) + k) > logits.flat(i * logits.size(1) + best)) best = k;
            out.push_back(best);
        }
    }
    return out;
}

ClassAgreement class_agreement(Classifier& net, const Tensor& images, const Tensor& asked) {
    if (asked.dim() != 1 || asked.size(0) != images.size(0))
        throw std::runtime_error(fmt::format("labels {} for {} images", asked.describe(), images.size(0)));
    ClassAgreement a;
    a.asked.assign(static_cast<size_t>(net.classes), 0), a.agreed.assign(static_cast<size_t>(net.classes), 0);
    const std::vector<int64_t> predicted = classify(net, images);
    for (int64_t i = 0; i < images.size(0); ++i) {
        const double v = asked.flat(i);
        if (!(v >= 0 && v < double(net.classes) && v == std::floor(v)))
            throw std::runtime_error(fmt::format("label {} of image {} is not a class in [0, {})", v, i, net.classes));
        const auto k = static_cast<size_t>(v);
        ++a.asked[k], ++a.total_asked;
        if (predicted[static_cast<size_t>(i)] == int64_t(k)) ++a.agreed[k], ++a.total_agreed;
    }
    return a;
}

namespace {
// Each pixel the mean of its 3x3 neighbourhood (edges clamped).
Tensor blur3x3(const Tensor& x) {
    const int64_t N = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
    Tensor out(x.shape(), DType::F32);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < H; ++i)
            for (int64_t j = 0; j < W; ++j) {
                double s = 0;
                for (int64_t di = -1; di <= 1; ++di)
                    for (int64_t dj = -1; dj <= 1; ++dj)
                        s += x.data<float>()[(n * H + std::clamp(i + di, int64_t(0), H - 1)) * W + std::clamp(j + dj, int64_t(0), W - 1)];
                out.data<float>()[(n * H + i) * W + j] = static_cast<float>(s / 9);
            }
    return out;
}

// Reference distances, as FID papers calibrate theirs: sets from the data itself (near 0,
// the floor a finite sample sets), and visibly damaged ones (far above).
void calibrate(FidNet& f, const Dataset& train, const Dataset& test, uint64_t seed) {
    std::vector<double> subsets;
    for (int64_t k = 0; k < 10; ++k) subsets.push_back(fid_of(f, dataset_images(test, 1000 * k, 1000 * (k + 1))));
    double mean = 0;
    for (double v : subsets) mean += v / 10;
    Generator gen(seed);
    const Tensor first = dataset_images(test, 0, 1000);
    const Tensor noisy = clamp(first + 0.2 * randn(first.shape(), gen), -1.0, 1.0);
    fmt::print("| images | FID (ours) vs the {} test images |\n|---|---|\n", f.test.n);
    fmt::print("| 10,000 training images | {:.3f} |\n", fid_of(f, dataset_images(train, 0, 10000)));
    fmt::print("| 1,000 training images | {:.3f} |\n", fid_of(f, dataset_images(train, 0, 1000)));
    fmt::print("| 1,000 test images (10 disjoint subsets: mean, min, max) | {:.3f} ({:.3f} to {:.3f}) |\n", mean,
               *std::min_element(subsets.begin(), subsets.end()), *std::max_element(subsets.begin(), subsets.end()));
    fmt::print("| 1,000 test images blurred (3x3 box) | {:.3f} |\n", fid_of(f, blur3x3(first)));
    fmt::print("| 1,000 test images + N(0, 0.2^2) noise | {:.3f} |\n", fid_of(f, noisy));
}

Dataset labelled(const std::string& data, Split split) {
    Dataset d = load_dataset(data, split, 1, 28);
    if (d.labels.empty()) throw std::runtime_error(d.description + ": has no labels; the feature classifier needs them");
    return d;
}

// A table row per class: images asked for, and the share the classifier puts in that class.
void print_agreement(const FidNet& f, const ClassAgreement& a, const std::string& labels) {
    const std::vector<std::string> names = labelled(f.data, Split::Test).class_names;
    fmt::print("classified as the class asked for ({}, by the {:.2f}%-accurate classifier):\n| class | images | agree |\n|---|---|---|\n",
               labels, 100 * f.test_accuracy);
    for (size_t k = 0; k < a.asked.size(); ++k)
        if (a.asked[k] > 0)
            fmt::print("| {} {} | {} | {:.1f}% |\n", k, k < names.size() ? names[k] : "", a.asked[k], 100.0 * a.agreed[k] / a.asked[k]);
    fmt::print("| all | {} | {:.1f}% |\n", a.total_asked, 100.0 * a.total_agreed / std::max<int64_t>(1, a.total_asked));
}
}  // namespace

int run_fid(const FidCommand& c) {
    set_threads(c.threads);
    const std::string path = c.features.empty() ? default_features_path(c.data) : c.features;
    if (!c.train_features && !c.calibrate && c.samples.empty())
        throw std::invalid_argument("nothing to do: give the samples to score, --train-features or --calibrate");
    if (c.train_features) {
        const Dataset train = labelled(c.data, Split::Train), test = labelled(c.data, Split::Test);
        Classifier net(train.channels, train.height, static_cast<int64_t>(train.class_names.size()), c.width, c.hidden,
                       c.seed);
        fmt::print("training the feature classifier ({} parameters) on {}\n", net.num_parameters(), train.description);
        train_classifier(net, train, test, c.epochs, c.seed);
        const double acc = accuracy(net, test);
        fs::create_directories(fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path());
        const Tensor raw = classifier_features(net, dataset_images(test, 0, test.n));
        const FeatureStats raw_stats = feature_stats(raw);
        double trace = 0;
        for (int64_t i = 0; i < raw_stats.dim; ++i) trace += raw_stats.cov[i * raw_stats.dim + i];
        const double scale = std::sqrt(double(raw_stats.dim) / trace);
        save_fid_net(path, net, scale, feature_stats(raw * scale), acc, c.data, train.height);
        fmt::print("wrote {}: test accuracy {:.2f}%\n", path, 100 * acc);
    }
    FidNet f = load_fid_net(path);
    if (c.calibrate) calibrate(f, labelled(f.data, Split::Train), labelled(f.data, Split::Test), c.seed);
    if (c.samples.empty()) return 0;
    const Tensor x = load_sample_images(c.samples, f.net->in_channels, f.image_size);
    fmt::print("FID (ours: {} classifier features, {:.2f}% test accuracy; not Inception-FID) of {} images from {}: {:.3f}\n",
               f.data, 100 * f.test_accuracy, x.size(0), c.samples, fid_of(f, x));
    if (!c.labels.empty()) print_agreement(f, class_agreement(*f.net, x, read_npy(c.labels)), c.labels);
    return 0;
}

}  // namespace ddpm
