"""Phi kernel: closed form against the reference code's 1000-sample Monte-Carlo estimate.

Times both on the N x N kernel of a Shifted-Gauss training set (N=1000, d=100 by default) and
measures the error of each against a very long Monte-Carlo run.
Usage: python benchmarks/phi_kernel.py [--n 1000] [--d 100] [--gamma 0.0] [--long-samples 200000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pl_dsl.science.data import make_dataset
from pl_dsl.science.theory import phi, phi_monte_carlo
from pl_dsl.spec.config import DataConfig


def best_time(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--gamma", type=float, default=0.0)
    parser.add_argument("--long-samples", type=int, default=200_000)
    args = parser.parse_args()
    data = make_dataset(DataConfig(kind="shifted_gauss", dim=args.d, n_train=args.n, n_test=1, mean_shift=0.3), 0)
    x = data.x
    gen = torch.Generator().manual_seed(0)
    closed = best_time(lambda: phi(x, x, args.gamma), 7)
    monte_carlo = best_time(lambda: phi_monte_carlo(x, x, args.gamma, 1000, gen, chunk=1000), 7)
    exact = phi(x.double(), x.double(), args.gamma)
    short = phi_monte_carlo(x.double(), x.double(), args.gamma, 1000, gen, chunk=1000)
    start = time.perf_counter()
    long = phi_monte_carlo(x.double(), x.double(), args.gamma, args.long_samples, gen)
    long_seconds = time.perf_counter() - start
    print(f"Phi on an N x N kernel, N={args.n}, d={args.d}, gamma={args.gamma}, torch threads={torch.get_num_threads()}")
    print(f"closed form                 : {closed * 1e3:8.2f} ms")
    print(f"Monte Carlo, 1000 samples   : {monte_carlo * 1e3:8.2f} ms")
    print(f"speed-up of the closed form : {monte_carlo / closed:8.1f} x")
    print(f"error against a {args.long_samples}-sample Monte-Carlo run ({long_seconds:.1f} s):")
    for name, estimate in (("closed form", exact), ("Monte Carlo, 1000 samples", short)):
        diff = (estimate - long).abs()
        print(f"  {name:26s}: mean |error| {diff.mean().item():.2e}, max |error| {diff.max().item():.2e}")
    print(f"(the long run's own standard error is about {0.5 / args.long_samples ** 0.5:.1e})")


if __name__ == "__main__":
    main()
