#!/usr/bin/env python3
"""likelihood_terms.py: where the bits of a full-bound evaluation come from.

Usage: likelihood_terms.py EVAL_terms.csv linear|cosine [first_t = 990]

Reads the per-timestep terms that `ddpm eval` writes (bits/dim and the eps error at each t)
and prints the share of the bound in the timesteps t >= first_t, beside what the eps error
alone predicts there. With sigma_t^2 ~ beta_t (both variance bounds agree where abar is
small), the KL of step t is, per dimension (guide.md, section 9),

    beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)) * E (eps - eps_hat)^2 / ln 2   bits,

so the eps error is multiplied by about beta_t / (2 alpha_t ln 2): 720 at the cosine
schedule's last step (beta clipped at 0.999, alpha = 0.001) and 0.015 at the linear
schedule's (beta = 0.02).
"""
import csv
import math
import sys


def betas(kind, T=1000):
    if kind == "linear":
        lo, hi = 1000 / T * 1e-4, 1000 / T * 0.02
        return [lo + (hi - lo) * i / (T - 1) for i in range(T)]
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
    return [min(1 - f(i + 1) / f(i), 0.999) for i in range(T)]


def main():
    path, kind = sys.argv[1], sys.argv[2]
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 990
    rows = [r for r in csv.DictReader(open(path)) if r["t"] != "prior"]
    b = betas(kind, len(rows))
    abar, ab = [], 1.0
    for x in b:
        ab *= 1 - x
        abar.append(ab)
    total = sum(float(r["bits_per_dim"]) for r in rows)
    print(f"{path}: sum of the {len(rows)} terms {total:.4f} bits/dim (the prior not included)")
    tail = 0.0
    print(" t   beta_t   weight  eps_mse    bits/dim  predicted")
    for r in rows[first:]:
        t = int(r["t"])
        weight = b[t] ** 2 / (2 * b[t] * (1 - b[t]) * (1 - abar[t])) / math.log(2)
        mse = float(r["eps_mse"])
        tail += float(r["bits_per_dim"])
        print(f"{t:4d} {b[t]:.5f} {weight:8.2f} {mse:.3e} {float(r['bits_per_dim']):9.5f} {weight * mse:9.5f}")
    print(f"terms t >= {first}: {tail:.4f} bits/dim of {total:.4f}")


if __name__ == "__main__":
    main()
