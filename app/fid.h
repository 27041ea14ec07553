// fid.h: `ddpm fid`, the Fréchet distance between the feature statistics of two sets of
// images (Heusel et al. 2017), in the feature space of our own classifier (nn/classifier.h)
// trained on the data set's training split: not Inception-FID, whose weights cannot be
// fetched here, and not comparable with published FID numbers; comparable with itself.
#pragma once

#include <string>
#include <vector>

#include "app/data.h"
#include "nn/classifier.h"
#include "util/fields.h"

namespace ddpm {

// Mean and covariance (unbiased, dim x dim, row-major) of N feature vectors.
struct FeatureStats {
    int64_t dim = 0, n = 0;
    std::vector<double> mean, cov;
};
FeatureStats feature_stats(const Tensor& features);  // features (N, D)

// d^2 = |mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a^1/2 S_b S_a^1/2)^1/2): the squared
// Wasserstein-2 distance of two Gaussians. S_a^1/2 from the eigendecomposition of S_a, then
// the eigenvalues of the symmetric product S_a^1/2 S_b S_a^1/2 (negative rounding clipped at 0).
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

// Eigenvalues (ascending, into w) and eigenvectors (columns, over a) of the symmetric
// n x n matrix a (row-major), by LAPACK's dsyev from OpenBLAS.
void symmetric_eigen(std::vector<double>& a, int64_t n, std::vector<double>& w);

// The classifier with the statistics of the test split, as cached by --train-features.
// Features are multiplied by `scale`, fixed when the classifier is trained so that the
// test split's feature covariance has trace = dimension (unit variance per dimension on
// average): distances then do not depend on the arbitrary scale of the activations.
struct FidNet {
    std::unique_ptr<Classifier> net;
    double scale = 1;
    FeatureStats test;
    double test_accuracy = 0;
    std::string data;
    int64_t image_size = 0;
};
FidNet load_fid_net(const std::string& path);
void save_fid_net(const std::string& path, Classifier& net, double scale, const FeatureStats& test, double acc,
                  const std::string& data, int64_t image_size);
// Where --train-features caches the classifier of a data set: runs/fid_<data>.safetensors.
std::string default_features_path(const std::string& data);

// Features (N, 4 width) of images (N, C, H, W) in [-1, 1], times `scale`, in float64.
Tensor classifier_features(Classifier& net, const Tensor& images, double scale = 1, int64_t batch = 500);

// Images to score: an .npy array (N, C, H, W) float32 in [-1, 1] as `ddpm sample` writes,
// or a folder of PNG files. A wrong shape, NaNs or an empty folder are refused by name.
Tensor load_sample_images(const std::string& path, int64_t channels, int64_t size);

// The FID (ours) of images against the test statistics.
double fid_of(FidNet& f, const Tensor& images);

// The classifier's class (argmax of the logits) of each image (N, C, H, W) in [-1, 1].
std::vector<int64_t> classify(Classifier& net, const Tensor& images, int64_t batch = 500);

// How often the classifier puts generated images in the class they were asked for (ddpm
// sample --class): per class and overall. asked holds N class indices (floats, as
// OUT_labels.npy); a wrong count or an index outside the classifier's classes is refused.
struct ClassAgreement {
    std::vector<int64_t> asked, agreed;  // per class
    int64_t total_asked = 0, total_agreed = 0;
};
ClassAgreement class_agreement(Classifier& net, const Tensor& images, const Tensor& asked);

struct FidCommand {
    std::string samples;        // .npy or a folder of PNGs
    std::string data = "fashion-mnist";
    std::string features;       // the cached classifier and statistics (default runs/fid_<data>.safetensors)
    std::string labels;         // the classes the samples were asked for (OUT_labels.npy of ddpm sample --class)
    bool train_features = false;
    bool calibrate = false;
    int64_t epochs = 3, width = 32, hidden = 64;
    uint64_t seed = 0;
    int threads = 0;
    template <class Self, class Visit> static void fields(Self& c, Visit&& v) {
        v(Field{.flag = "samples", .help = "an .npy array (N, C, H, W) in [-1, 1] or a folder of PNG images"}, c.samples);
        v(Field{.flag = "--data", .help = "the data set whose test split is the reference"}, c.data);
        v(Field{.flag = "--features", .help = "the cached classifier (default runs/fid_<data>.safetensors)"}, c.features);
        v(Field{.flag = "--labels", .help = "OUT_labels.npy of `ddpm sample --class`: also print how often the classifier "
                                            "agrees with the class asked for"},
          c.labels);
        v(Field{.flag = "--train-features", .help = "train the classifier on the training split and cache it"},
          c.train_features);
        v(Field{.flag = "--calibrate", .help = "print reference distances: train vs test, test subsets, blurred and noisy"},
          c.calibrate);
        v(Field{.flag = "--epochs", .help = "classifier training epochs (with --train-features)"}, c.epochs);
        v(Field{.flag = "--width", .help = "classifier width w (channels w, 2w, 2w, 4w)"}, c.width);
        v(Field{.flag = "--hidden", .help = "width of the classifier's hidden layer"}, c.hidden);
        v(Field{.flag = "--seed", .help = "seed"}, c.seed);
        v(Field{.flag = "--threads", .help = "threads (0: all cores)"}, c.threads);
    }
};
int run_fid(const FidCommand& c);

}  // namespace ddpm
