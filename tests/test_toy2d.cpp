// The 2-D toy end to end: an MLP eps-network trained with L_simple must put its
// DDPM samples on the data: the mean distance from a sample to its nearest data
// point well under that of N(0, I) noise, and every one of the 8 modes covered.
#include <filesystem>

#include "app/image_io.h"
#include "app/toy2d.h"
#include "helpers.h"

using namespace ddpm;

TEST_CASE("2-D toy: DDPM samples of a trained MLP match the 8-Gaussian data") {
    Toy2dResult r = run_toy2d(6000, 1);
    MESSAGE("trained in " << r.seconds << " s; nearest-data distance: samples " << r.sample_distance << ", noise "
                          << r.noise_distance);
    // Within a mode the data's own nearest-neighbour spacing at n = 2000 is ~0.02.
    CHECK(r.sample_distance < 0.06);
    CHECK(r.sample_distance < 0.15 * r.noise_distance);
    for (double s : r.shares) {
        CHECK(s > 0.125 * 0.6);  // no mode dropped or starved
        CHECK(s < 0.125 * 1.4);
    }
    const std::string path = (std::filesystem::temp_directory_path() / "ddpm_toy2d_test.png").string();
    write_toy2d_plot(path, r);
    Image img = read_png(path);
    CHECK(img.width == 560);
    std::filesystem::remove(path);
}
