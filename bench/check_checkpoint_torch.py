"""Loads a ddpm.cpp checkpoint into the PyTorch twin (bench/torch_unet.py) with
load_state_dict(strict=True), for both the weights and the EMA weights, and
runs one forward pass. Shows that our files use PyTorch's names and layouts.

    /usr/bin/python3 bench/check_checkpoint_torch.py runs/main-.../checkpoint_00001000.safetensors
"""
import json
import sys

import torch

from torch_unet import UNet, load_safetensors

path = sys.argv[1]
tensors, meta = load_safetensors(path)
cfg = json.loads(meta["config"])
print("format", meta["format"], "step", meta["step"], "config", cfg["name"])
for prefix in ("model.", "ema."):
    net = UNet(cfg)
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    net.load_state_dict(state, strict=True)
    net.eval()
    with torch.no_grad():
        x = torch.randn(2, cfg["in_channels"], cfg["image_size"], cfg["image_size"])
        y = net(x, torch.tensor([10.0, 500.0]))
    print(f"{prefix:7s} {len(state)} tensors loaded strictly; forward output {tuple(y.shape)}, "
          f"mean {y.mean().item():.4f}, std {y.std().item():.4f}")
others = sorted({k.split(".")[0] + "." + k.split(".")[1] for k in tensors if k.startswith("optim.")})
print("optimizer state:", ", ".join(others), f"({sum(1 for k in tensors if k.startswith('optim.'))} tensors)")
print("metadata keys:", ", ".join(sorted(meta)))
