"""torch_convert.py: ddpm.cpp model files to PyTorch and back.

    /usr/bin/python3 bench/torch_convert.py to-torch MODEL.safetensors OUT.pt [--probe PROBE.safetensors]
    /usr/bin/python3 bench/torch_convert.py from-torch IN.pt OUT.safetensors [--config tiny|small|cifar10|FILE.json]

to-torch loads a model file (`ddpm export`) or a training checkpoint (its EMA
weights when it has them) into the PyTorch twin of bench/torch_unet.py and saves
{"config", "diffusion", "state_dict"} with torch.save. --probe also runs the twin
on a fixed input and writes x, t and its output, so that ddpm.cpp can check it
computes the same function.

from-torch reads such a file, or a bare state dict with --config, loads it into
the twin (every name and shape checked: load_state_dict(strict=True)) and writes
a ddpm.cpp model file that `ddpm info`, `ddpm sample` and `ddpm eval` read.

The parameter names are the same on both sides (see the table in the README):
a twin's "down.1.block.0.conv1.weight" is "model.down.1.block.0.conv1.weight" in
our files, in the same layout. Needs Debian's python3-torch; never used by the
library, the executable or CI.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet import PRESETS, UNet, load_safetensors, save_safetensors  # noqa: E402

MODEL_FORMAT = "ddpm.cpp/model/1"


def weights_of(tensors):
    """The EMA weights of a checkpoint when present, else model.*, without the prefix."""
    prefix = "ema." if any(k.startswith("ema.") for k in tensors) else "model."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def twin(cfg, state_dict):
    net = UNet(cfg).to(next(iter(state_dict.values())).dtype)
    net.load_state_dict(state_dict, strict=True)
    return net.eval()


def to_torch(src, out, probe=None):
    tensors, meta = load_safetensors(src)
    if "config" not in meta:
        sys.exit(f"{src}: __metadata__ has no 'config'")
    cfg = json.loads(meta["config"])
    diffusion = json.loads(meta["diffusion"]) if "diffusion" in meta else \
        json.loads(meta["extra"])["diffusion"] if "extra" in meta else None
    net = twin(cfg, weights_of(tensors))
    torch.save({"config": cfg, "diffusion": diffusion, "state_dict": net.state_dict()}, out)
    print(f"wrote {out}: {sum(p.numel() for p in net.parameters())} parameters")
    if probe:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(3, cfg["in_channels"], cfg["image_size"], cfg["image_size"], generator=gen, dtype=torch.float64)
        t = torch.tensor([0.0, 417.0, 999.0], dtype=torch.float64)
        probe_tensors = {"x": x, "t": t}
        if cfg.get("num_classes", 0) > 0:  # a class, the last class and "no class"
            k = cfg["num_classes"]
            probe_tensors["labels"] = torch.tensor([0.0, k - 1.0, float(k)], dtype=torch.float64)
        with torch.no_grad():
            probe_tensors["y"] = net.double()(x, t, probe_tensors.get("labels"))
        save_safetensors(probe, probe_tensors, {"config": json.dumps(cfg)})
        print(f"wrote {probe}: the twin's output on a fixed input")


def from_torch(src, out, config=None):
    obj = torch.load(src)
    if isinstance(obj, dict) and "state_dict" in obj:
        state, cfg, diffusion = obj["state_dict"], obj.get("config"), obj.get("diffusion")
    else:
        state, cfg, diffusion = obj, None, None
    if config:
        cfg = dict(PRESETS[config], name=config) if config in PRESETS else json.load(open(config))
    if cfg is None:
        sys.exit(f"{src}: a bare state dict: say which network with --config")
    net = twin(cfg, state)
    meta = {"format": MODEL_FORMAT, "config": json.dumps(cfg), "weights": "converted from PyTorch",
            "source": os.path.basename(src)}
    if diffusion:
        meta["diffusion"] = json.dumps(diffusion)
    save_safetensors(out, {"model." + k: v for k, v in net.state_dict().items()}, meta)
    print(f"wrote {out}: a ddpm.cpp model file")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("to-torch")
    a.add_argument("src")
    a.add_argument("out")
    a.add_argument("--probe")
    b = sub.add_parser("from-torch")
    b.add_argument("src")
    b.add_argument("out")
    b.add_argument("--config")
    args = p.parse_args()
    if args.cmd == "to-torch":
        to_torch(args.src, args.out, args.probe)
    else:
        from_torch(args.src, args.out, args.config)


if __name__ == "__main__":
    main()
