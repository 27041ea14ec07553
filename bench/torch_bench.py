"""torch_bench.py: the PyTorch twin of `ddpm bench` — same U-Net, same recipe,
same JSON. Needs Debian's python3-torch; never used by the tests or CI.

    /usr/bin/python3 bench/torch_bench.py --config small --batch 64 --threads 2
"""
import argparse
import json
import math
import resource
import statistics
import time

import torch

from torch_unet import PRESETS, UNet

GFLOP_PER_IMAGE = {"tiny": 0.1178, "small": 0.6246, "cifar10": 6.0655}

p = argparse.ArgumentParser()
p.add_argument("--config", default="small")
p.add_argument("--batch", type=int, default=64)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
cfg = dict(PRESETS[a.config], name=a.config)
net = UNet(cfg)
opt = torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.9, 0.999), eps=1e-8)
ema = [q.detach().clone() for q in net.parameters()]
T = 1000
betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
abar = torch.cumprod(1 - betas, 0)
S = cfg["image_size"]
x0 = torch.randn(a.batch, cfg["in_channels"], S, S).clamp(-1, 1)


def autocast():
    # --precision bf16: PyTorch's mixed precision on the CPU: fp32 weights, Adam and EMA, the
    # convolutions and matmuls in bfloat16 (autocast), group norm and softmax in fp32 (torch_unet.py)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16")


def train_step():
    t = torch.randint(0, T, (a.batch,))
    eps = torch.randn_like(x0)
    ab = abar[t].float()[:, None, None, None]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    with autocast():
        out = net(xt, t.float())
    loss = ((eps - out.float()) ** 2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        for e, q in zip(ema, net.parameters()):
            e.mul_(0.9999).add_(q, alpha=1 - 0.9999)


def ddim_step(x, t, t_prev):
    with torch.no_grad(), autocast():
        e = net(x, torch.full((a.batch,), float(t))).float()
        a_t, a_p = abar[t].item(), abar[t_prev].item()
        x0_hat = ((x - math.sqrt(1 - a_t) * e) / math.sqrt(a_t)).clamp(-1, 1)
        e = (x - math.sqrt(a_t) * x0_hat) / math.sqrt(1 - a_t)
        return math.sqrt(a_p) * x0_hat + math.sqrt(1 - a_p) * e


step_s, fwd_s, ddim_s = [], [], []
for i in range(a.steps + 2):
    net.train()
    t0 = time.perf_counter()
    train_step()
    t1 = time.perf_counter()
    net.eval()
    with torch.no_grad(), autocast():
        net(x0, torch.randint(0, T, (a.batch,)).float())
    t2 = time.perf_counter()
    ddim_step(x0, 500, 480)
    t3 = time.perf_counter()
    if i >= 2:
        step_s.append(t1 - t0), fwd_s.append(t2 - t1), ddim_s.append(t3 - t2)
g = GFLOP_PER_IMAGE[a.config]
step, fwd = statistics.median(step_s), statistics.median(fwd_s)
print(json.dumps({"framework": "pytorch " + torch.__version__, "config": a.config, "batch": a.batch,
                  "threads": a.threads, "precision": a.precision, "train_step_s": step, "forward_s": fwd,
                  "ddim_step_s": statistics.median(ddim_s),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "train_gflops": 3 * g * a.batch / step, "forward_gflops": g * a.batch / fwd,
                  "steps_timed": a.steps}))
