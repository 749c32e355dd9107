"""One training in kernel form (science.nn.InKernelForm: one N x N x m product a step) against
the same training with explicit weights (science.nn.ByHand: two N x d x m products a step),
side by side in one process, one thread, at the CPU tier's shapes and around the crossover
N = 2d; prints each time, their ratio, the ratio of multiply-adds, which form `train` picks
(nn.in_kernel_form_pays) and how far the two trainings' weights end apart.

Usage: python benchmarks/kernel_form.py [--repeat N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch

from pl_dsl.science import nn
from pl_dsl.science.nn import build_network, in_kernel_form_pays, train
from pl_dsl.spec.config import NetworkConfig, TrainingConfig

# (N, d, m, T): MNIST and Fashion-MNIST of the tier (d = 784, N = 1000), Gauss (d = 1000, N = 300),
# small widths, and N near and past 2d, where explicit weights win again.
SHAPES = [(1000, 784, 100, 300), (1000, 784, 300, 300), (300, 1000, 50, 200), (300, 1000, 300, 300),
          (1000, 784, 10, 300), (1000, 784, 1, 300), (100, 100, 100, 1000), (1400, 784, 300, 200),
          (2000, 784, 300, 100)]


def timed(form: str, samples: int, dim: int, width: int, steps: int, device: torch.device
          ) -> tuple[float, torch.Tensor]:
    """Seconds of one training (momentum 0.9, plateau) in the given form, and its final weights."""
    nn.KERNEL_MARGIN = {"kernel": float("inf"), "explicit": 0.0}[form]
    generator = torch.Generator().manual_seed(0)
    net = build_network(NetworkConfig(width, 0.0, "gaussian", True), dim, generator).to(device)
    x = torch.randn(samples, dim, generator=generator).to(device)
    y = torch.sign(torch.randn(samples, generator=generator)).to(device)
    config = TrainingConfig("identity", steps, 0.01, "sgd", 0.9, "plateau", "fp32")
    start = time.perf_counter()
    train(net, x, y, config)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, net.weight.detach().cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many, the forms taking turns")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (torch.cuda.is_available() is False)")
    torch.set_num_threads(1)
    device, margin = torch.device(args.device), nn.KERNEL_MARGIN
    print(f"{'N':>5} {'d':>5} {'m':>4} {'T':>5}  explicit s  kernel s  time ratio  multiply-adds ratio  "
          f"picked    max |W_kernel - W_explicit| / max |W|")
    for samples, dim, width, steps in SHAPES:
        best = {"explicit": float("inf"), "kernel": float("inf")}
        weights = {}
        for _ in range(args.repeat):
            for form in best:
                seconds, weights[form] = timed(form, samples, dim, width, steps, device)
                best[form] = min(best[form], seconds)
        nn.KERNEL_MARGIN = margin
        picked = "kernel" if in_kernel_form_pays(samples, dim) else "explicit"
        apart = (weights["kernel"] - weights["explicit"]).abs().max() / weights["explicit"].abs().max()
        print(f"{samples:>5} {dim:>5} {width:>4} {steps:>5}  {best['explicit']:>10.3f}  {best['kernel']:>8.3f}  "
              f"{best['kernel'] / best['explicit']:>10.2f}  {samples / (2 * dim):>19.2f}  {picked:<8}  {apart:.1e}")


if __name__ == "__main__":
    main()
