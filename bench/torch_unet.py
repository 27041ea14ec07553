"""torch_unet.py: a PyTorch twin of ddpm.cpp's U-Net (the network of docs/unet.md).

Same modules, same parameter names ("down.1.block.0.conv1.weight"), same
layouts, so a ddpm.cpp checkpoint loads with load_state_dict and the two
frameworks can be compared number for number. Also a minimal safetensors
reader/writer (the format is 8 bytes of header length, a JSON header, raw
little-endian data), since Debian 12 packages no `safetensors` module.

Used by tests/fixtures/make_unet_fixture.py and by the benchmarks; never by
the library, the executable or CI.
"""
import json
import math
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "tiny": dict(in_channels=1, out_channels=1, image_size=28, channels=16, ch_mult=[1, 2], num_res_blocks=1,
                 attn_resolutions=[14], groups=8, dropout=0.0, heads=1, gn_eps=1e-5),
    "mini": dict(in_channels=1, out_channels=1, image_size=28, channels=16, ch_mult=[1, 2, 2], num_res_blocks=1,
                 attn_resolutions=[7], groups=8, dropout=0.0, heads=1, gn_eps=1e-5),
    "small": dict(in_channels=1, out_channels=1, image_size=28, channels=32, ch_mult=[1, 2, 2], num_res_blocks=2,
                  attn_resolutions=[14], groups=8, dropout=0.1, heads=1, gn_eps=1e-5),
    "cifar10": dict(in_channels=3, out_channels=3, image_size=32, channels=128, ch_mult=[1, 2, 2, 2],
                    num_res_blocks=2, attn_resolutions=[16], groups=32, dropout=0.1, heads=1, gn_eps=1e-5),
}


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm, computed in fp32 when its input is bfloat16 (a convolution's output
    under torch.autocast, which in 1.13 has no CPU rule for group norm), as ddpm.cpp's
    --precision bf16 does, and returned as bfloat16. fp32 and float64 as they are."""

    def forward(self, x):
        if x.dtype != torch.bfloat16:
            return super().forward(x)
        return super().forward(x.float()).type(x.dtype)


def timestep_embedding(t, dim):
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / (half - 1))
    arg = t.to(torch.float64)[:, None] * freq[None, :]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb_ch, groups, dropout, eps, scale_shift=False):
        super().__init__()
        self.norm1 = GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.scale_shift = scale_shift  # temb gives [s, b]: norm2 becomes GN(h) (1 + s) + b
        self.temb_proj = nn.Linear(temb_ch, 2 * cout if scale_shift else cout)
        self.norm2 = GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = dropout
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        emb = self.temb_proj(temb_act)[:, :, None, None]
        if self.scale_shift:
            s, b = emb.chunk(2, dim=1)
            h = F.silu(self.norm2(h) * (1 + s) + b)
        else:
            h = F.silu(self.norm2(h + emb))
        h = self.conv2(F.dropout(h, self.dropout, self.training))
        return (self.skip(x) if self.skip is not None else x) + h


class AttnBlock(nn.Module):
    def __init__(self, ch, heads, groups, eps):
        super().__init__()
        self.norm = GroupNorm(groups, ch, eps=eps)
        self.q, self.k, self.v = (nn.Conv2d(ch, ch, 1) for _ in range(3))
        self.proj_out = nn.Conv2d(ch, ch, 1)
        self.heads = heads

    def forward(self, x):
        B, C, H, W = x.shape
        d = C // self.heads
        h = self.norm(x)
        q = self.q(h).reshape(B * self.heads, d, H * W) / math.sqrt(d)
        k = self.k(h).reshape(B * self.heads, d, H * W)
        v = self.v(h).reshape(B * self.heads, d, H * W)
        s = torch.bmm(q.transpose(1, 2), k)
        w = torch.softmax(s, dim=-1, dtype=torch.float32 if s.dtype == torch.bfloat16 else s.dtype)  # bf16: in fp32
        out = torch.bmm(v, w.transpose(1, 2)).reshape(B, C, H, W)
        return x + self.proj_out(out)


class Level(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()


class Downsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        C, levels = cfg["channels"], len(cfg["ch_mult"])
        temb_ch = 4 * C
        mk_res = lambda i, o: ResBlock(i, o, temb_ch, cfg["groups"], cfg["dropout"], cfg["gn_eps"],
                                       cfg.get("scale_shift_norm", False))
        mk_attn = lambda c: AttnBlock(c, cfg["heads"], cfg["groups"], cfg["gn_eps"])
        self.time_embed = nn.Sequential(nn.Linear(C, temb_ch), nn.SiLU(), nn.Linear(temb_ch, temb_ch))
        self.conv_in = nn.Conv2d(cfg["in_channels"], C, 3, padding=1)
        skip, ch, res = [C], C, cfg["image_size"]
        self.down = nn.ModuleList()
        for i, m in enumerate(cfg["ch_mult"]):
            lv = Level()
            for _ in range(cfg["num_res_blocks"]):
                lv.block.append(mk_res(ch, C * m))
                ch = C * m
                if res in cfg["attn_resolutions"]:
                    lv.attn.append(mk_attn(ch))
                skip.append(ch)
            if i != levels - 1:
                lv.downsample = Downsample(ch)
                skip.append(ch)
                res //= 2
            self.down.append(lv)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = mk_res(ch, ch), mk_attn(ch), mk_res(ch, ch)
        ups = [None] * levels
        for i in reversed(range(levels)):
            lv = Level()
            for _ in range(cfg["num_res_blocks"] + 1):
                lv.block.append(mk_res(ch + skip.pop(), C * cfg["ch_mult"][i]))
                ch = C * cfg["ch_mult"][i]
                if res in cfg["attn_resolutions"]:
                    lv.attn.append(mk_attn(ch))
            if i != 0:
                lv.upsample = Upsample(ch)
                res *= 2
            ups[i] = lv
        self.up = nn.ModuleList(ups)
        self.norm_out = GroupNorm(cfg["groups"], ch, eps=cfg["gn_eps"])
        self.conv_out = nn.Conv2d(ch, cfg["out_channels"], 3, padding=1)
        if cfg.get("num_classes", 0) > 0:  # class-conditional: K classes and row K, "no class"
            self.label_emb = nn.Embedding(cfg["num_classes"] + 1, temb_ch)

    def forward(self, x, t, y=None):
        temb = self.time_embed(timestep_embedding(t, self.cfg["channels"]).to(x.dtype))
        if hasattr(self, "label_emb"):
            if y is None:
                y = torch.full((x.shape[0],), self.cfg["num_classes"])
            temb = temb + self.label_emb(y.long())
        temb_act = F.silu(temb)
        hs = [self.conv_in(x)]
        for lv in self.down:
            for j, blk in enumerate(lv.block):
                h = blk(hs[-1], temb_act)
                if len(lv.attn):
                    h = lv.attn[j](h)
                hs.append(h)
            if hasattr(lv, "downsample"):
                hs.append(lv.downsample(hs[-1]))
        h = hs[-1]
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h, temb_act)), temb_act)
        for i in reversed(range(len(self.up))):
            lv = self.up[i]
            for j, blk in enumerate(lv.block):
                h = blk(torch.cat([h, hs.pop()], dim=1), temb_act)
                if len(lv.attn):
                    h = lv.attn[j](h)
            if hasattr(lv, "upsample"):
                h = lv.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


_DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8)}


def load_safetensors(path):
    """Returns (dict name -> tensor, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        dt, _ = _DTYPES[e["dtype"]]
        b, end = e["data_offsets"]
        out[name] = torch.frombuffer(bytearray(raw[base + b:base + end]), dtype=dt).reshape(e["shape"]).clone()
    return out, meta


def save_safetensors(path, tensors, metadata=None):
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        t = t.detach().contiguous()
        code = {torch.float32: "F32", torch.float64: "F64"}[t.dtype]
        blob = t.numpy().tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + b"".join(blobs))
