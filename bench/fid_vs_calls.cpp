// fid_vs_calls: sample quality against network calls for every sampler, on one checkpoint.
//
// Usage: fid_vs_calls CHECKPOINT [num = 1000] [out = fid_vs_calls] [features = runs/fid_fashion-mnist.safetensors]
// Draws `num` images with DDPM (respaced ancestral), DDIM (eta 0), DPM-Solver++(2M) and
// Heun at 5, 10, 20 and 50 model calls (Heun: the odd count 2N - 1 at or below), scores
// each with `ddpm fid`'s classifier, and writes OUT.csv, OUT.md (a table) and OUT.png.
#include <fmt/format.h>

#include <chrono>
#include <fstream>

#include "app/fid.h"
#include "app/plot.h"
#include "app/image_io.h"
#include "app/run.h"
#include "app/sampling.h"

using namespace ddpm;

int main(int argc, char** argv) {
    if (argc < 2) {
        fmt::print(stderr, "usage: fid_vs_calls CHECKPOINT [num] [out] [features]\n");
        return 2;
    }
    const int64_t num = argc > 2 ? std::stoll(argv[2]) : 1000;
    const std::string out = argc > 3 ? argv[3] : "fid_vs_calls";
    FidNet fid = load_fid_net(argc > 4 ? argv[4] : "runs/fid_fashion-mnist.safetensors");
    LoadedModel m = load_trained_model(argv[1], true);
    const GaussianDiffusion base = m.diffusion.make();
    std::string csv = "sampler,model_calls,fid,seconds\n", md = "| sampler | 5 calls | 10 calls | 20 calls | 50 calls |\n|---|---|---|---|---|\n";
    std::vector<Series> curves;
    const unsigned char colours[4][3] = {{200, 60, 40}, {40, 120, 200}, {40, 160, 60}, {150, 60, 170}};
    int k = 0;
    for (const char* sampler : {"ddpm", "ddim", "dpmpp2m", "heun"}) {
        Series s{{}, {}, colours[k][0], colours[k][1], colours[k][2], sampler};
        md += fmt::format("| {} |", sampler);
        for (int64_t calls : {5, 10, 20, 50}) {
            SamplerSpec spec;
            spec.sampler = sampler, spec.steps = std::string(sampler) == "heun" ? calls - (calls + 1) % 2 : calls;
            const int64_t used = std::string(sampler) == "heun" ? 2 * ((spec.steps + 1) / 2) - 1 : spec.steps;
            Generator gen(0);
            const auto t0 = std::chrono::steady_clock::now();
            const Tensor x = sample_images(*m.model, sampling_chain(base, spec), spec, num, 250, gen);
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            const double f = fid_of(fid, x);
            fmt::print("{:8s} {:3d} calls: FID (ours) {:7.3f}  ({:.1f} s for {} images)\n", sampler, used, f, secs, num);
            std::fflush(stdout);
            csv += fmt::format("{},{},{:.4f},{:.2f}\n", sampler, used, f, secs);
            md += fmt::format(" {:.2f} ({}) |", f, used);
            s.x.push_back(double(used)), s.y.push_back(f);
        }
        md += "\n";
        curves.push_back(s);
        ++k;
    }
    std::ofstream(out + ".csv") << csv;
    std::ofstream(out + ".md") << md << fmt::format("\nFID (ours) of {} samples from {} against the test split; in "
                                                    "brackets, the model calls.\n", num, argv[1]);
    PlotOptions po;
    po.title = fmt::format("FID (ours) of {} samples against model calls", num);
    po.x_label = "model calls", po.y_label = "FID (ours)";
    po.log_y = true;
    write_png(out + ".png", plot(curves, po));
    fmt::print("wrote {}.csv, {}.md and {}.png\n", out, out, out);
    return 0;
}
