"""One perturbation-learning run as a plain single-file PyTorch script, the way a researcher
writes it without a workflow: Shifted Gauss data, f trained on D, a one-step L2 attack towards
random target labels, g trained on the perturbations alone (scenario a), accuracies printed.

The benchmarks compare pl-dsl against it: the same shapes, steps, optimizer (full-batch SGD,
momentum 0.9, ReduceLROnPlateau) and attack, so the same computation.

    python benchmarks/plain_run.py --dim 100 --n-train 1000 --width 100 --steps 1000 --threads 2
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F


def make_data(n: int, dim: int, shift: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.cat([torch.ones((n + 1) // 2), -torch.ones(n // 2)])
    return torch.randn(n, dim, generator=generator) + shift * y[:, None], y


def make_net(dim: int, width: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    weight = (torch.randn(width, dim, generator=generator) / math.sqrt(dim)).requires_grad_()
    readout = torch.randn(width, generator=generator) / math.sqrt(width)
    return weight, readout


def forward(weight: torch.Tensor, readout: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.relu(x @ weight.T) @ readout


def fit(weight: torch.Tensor, readout: torch.Tensor, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> None:
    optimizer = torch.optim.SGD([weight], lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -(y * forward(weight, readout, x)).mean()  # the identity loss of the margin
        loss.backward()
        optimizer.step()
        scheduler.step(loss.item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1000, help="T_f = T_g")
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--eps", type=float, default=0.01)
    parser.add_argument("--shift", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, every core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    x, y = make_data(args.n_train, args.dim, args.shift, generator)
    x_test, y_test = make_data(args.n_test, args.dim, args.shift, generator)

    f = make_net(args.dim, args.width, generator)
    fit(*f, x, y, args.steps, args.lr)

    y_adv = torch.randint(0, 2, (args.n_train,), generator=generator).float() * 2 - 1
    x_attack = x.clone().requires_grad_()
    (-(y_adv * forward(*f, x_attack)).mean()).backward()
    grad = x_attack.grad
    assert grad is not None
    delta = -args.eps * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-30)

    g = make_net(args.dim, args.width, generator)
    fit(*g, delta, y_adv, args.steps, args.lr)

    with torch.no_grad():
        f_test = torch.sign(forward(*f, x_test))
        g_test = torch.sign(forward(*g, x_test))
        g_clean = (torch.sign(forward(*g, x)) == y).float().mean().item()
        print(f"f test acc {(f_test == y_test).float().mean().item():.3f}  g clean acc {g_clean:.3f}  "
              f"g test acc {(g_test == y_test).float().mean().item():.3f}  "
              f"agreement {(f_test == g_test).float().mean().item():.3f}")


if __name__ == "__main__":
    main()
