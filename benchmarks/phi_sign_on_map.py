"""Why the authors' MNIST maps draw a bent f-hat = 0 line: their map.py estimates the kernel Phi by
Monte Carlo (utils/theory.py, 100 draws after set_seed(0)); pl-dsl's closed form is exact. This
prints, on the plane of their MNIST (a) map (every training sample of 1 vs 2, gamma = 0, limits
0..10 on both axes), the fraction of grid points where sign f-hat from their estimate differs from
sign f-hat in closed form, for 100 draws (theirs) and more.

    python benchmarks/phi_sign_on_map.py [--resolution 400] [--samples 100 1000 20000]

f-hat depends on the data set and gamma only, so no network is trained. Estimates with many draws
are computed on a coarser grid (--coarse points per axis) to bound the time.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch

from pl_dsl.science.data import make_dataset
from pl_dsl.science.datasets import REAL_DATASETS, files_content
from pl_dsl.science.reference import MAP_SAMPLES, their_phi
from pl_dsl.science.theory import f_hat
from pl_dsl.spec.config import DataConfig


def plane(x: torch.Tensor, y: torch.Tensor, limits: tuple[float, float], resolution: int) -> torch.Tensor:
    """The grid points z = s u + t v of their map (u, v: the normalised class means)."""
    u, v = x[y > 0].mean(0), x[y < 0].mean(0)
    basis = torch.stack([u / u.norm(), v / v.norm()])
    axis = torch.linspace(limits[0], limits[1], resolution)
    tt, ss = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([ss.flatten(), tt.flatten()], 1) @ basis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=400, help="their map.py's default")
    parser.add_argument("--coarse", type=int, default=100, help="grid for estimates with more than 100 draws")
    parser.add_argument("--samples", type=int, nargs="+", default=[MAP_SAMPLES, 1000, 20000])
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    classes = REAL_DATASETS["mnist"].default_classes
    data = make_dataset(DataConfig("mnist", 784, None, None, None, classes, None, files_content("mnist", None)), 0)
    x, y, gamma = data.x, data.y, 0.0
    print(f"MNIST {classes[0]} vs {classes[1]}: N = {len(x)}, gamma = {gamma}, limits 0..10")
    print(f"{'draws':>6}  {'grid':>9}  {'sign differs from closed form':>29}  {'seconds':>7}")
    for samples in args.samples:
        resolution = args.resolution if samples <= MAP_SAMPLES else args.coarse
        z = plane(x, y, (0.0, 10.0), resolution)
        start = time.perf_counter()
        closed = f_hat(x, y, z, gamma)
        estimate = f_hat(x, y, z, gamma, kernel=partial(their_phi, samples=samples))
        differs = (torch.sign(closed) != torch.sign(estimate)).float().mean().item()
        print(f"{samples:>6}  {resolution:>4} x {resolution:<4}  {differs:>29.4f}  {time.perf_counter() - start:>7.1f}",
              flush=True)


if __name__ == "__main__":
    main()
