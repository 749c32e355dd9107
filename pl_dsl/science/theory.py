"""The lazy-regime theory (Theorems 3.3-3.5): the kernel Phi in closed form, the perturbation
direction, and the limits f-hat and g-hat. Every N x M kernel is consumed in chunks, so memory
stays bounded by `max_bytes` whatever N and M are."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from pl_dsl.science import KERNEL_BLOCK_BYTES

DEFAULT_MAX_BYTES = KERNEL_BLOCK_BYTES
# A kernel Phi(z1, z2, gamma) -> the N1 x N2 matrix of Phi(z1_i, z2_j): the closed form `phi`
# unless a caller passes another (reference mode's maps pass the authors' Monte-Carlo estimate).
Kernel = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def phi(z1: torch.Tensor, z2: torch.Tensor, gamma: float, dim: int | None = None) -> torch.Tensor:
    """Phi(z1_i, z2_j) = (1+g)^2/4 + (1-g)^2 arcsin(rho)/(2 pi) for all pairs (closed form).

    rho is the correlation of <v, z1>+a and <v, z2>+a with v ~ N(0, I/d), a ~ N(0, 1); d is the
    rows' length unless `dim` gives it (rows in other coordinates that keep inner products, see
    PlaneCoordinates).
    """
    d = dim or z1.shape[1]
    inv1 = ((z1 * z1).sum(1) / d + 1).rsqrt_()
    inv2 = ((z2 * z2).sum(1) / d + 1).rsqrt_()
    # One N x M buffer, transformed in place: rho, then arcsin(rho), then Phi.
    out = torch.mm(z1, z2.T).div_(d).add_(1).mul_(inv1[:, None]).mul_(inv2[None, :])
    out.clamp_(-1.0, 1.0).asin_()
    return out.mul_((1 - gamma) ** 2 / (2 * math.pi)).add_((1 + gamma) ** 2 / 4)


class PlaneCoordinates:
    """Three coordinates that keep every inner product with the points of a plane through 0 and
    every norm: an orthonormal basis Q of the plane, and for any vector a, (a Q, |a - a Q Q^T|).
    A decision map's points lie on such a plane, and Phi, f-hat and g-hat read only inner products
    and norms, so in these coordinates their N x M products cost 3 multiply-adds per pair instead
    of d (the same values up to float rounding)."""

    def __init__(self, basis: torch.Tensor) -> None:
        """basis: 2 x d, the rows spanning the plane (a point is (s, t) @ basis)."""
        self.q, self.r = torch.linalg.qr(basis.T)  # basis = r^T q^T

    def of_points(self, plane: torch.Tensor) -> torch.Tensor:
        """The coordinates of the points (s, t) @ basis, given as rows (s, t)."""
        return torch.cat([plane @ self.r.T, plane.new_zeros(len(plane), 1)], 1)

    def of(self, a: torch.Tensor) -> torch.Tensor:
        """The coordinates of the rows of a: their parts in the plane, and the norm of the rest."""
        inside = a @ self.q
        rest = ((a * a).sum(1) - (inside * inside).sum(1)).clamp_min_(0).sqrt_()
        return torch.cat([inside, rest[:, None]], 1)


def phi_monte_carlo(z1: torch.Tensor, z2: torch.Tensor, gamma: float, samples: int,
                    generator: torch.Generator, chunk: int = 4096) -> torch.Tensor:
    """Monte-Carlo estimate of Phi from `samples` draws of (v, a); exists to test `phi`."""
    d = z1.shape[1]
    total = torch.zeros(len(z1), len(z2), dtype=z1.dtype)
    done = 0
    while done < samples:
        s = min(chunk, samples - done)
        v = torch.randn(d, s, generator=generator, dtype=z1.dtype) / math.sqrt(d)
        a = torch.randn(s, generator=generator, dtype=z1.dtype)
        slope1 = torch.where(z1 @ v + a > 0, 1.0, gamma).to(z1.dtype)
        slope2 = torch.where(z2 @ v + a > 0, 1.0, gamma).to(z1.dtype)
        total += slope1 @ slope2.T
        done += s
    return total / samples


def _row_chunks(rows: int, other: int, max_bytes: int, tensors: int = 3) -> Iterator[slice]:
    """Slices of `rows` such that `tensors` float32 blocks of (chunk x other) fit in max_bytes."""
    step = max(1, max_bytes // (4 * tensors * max(other, 1)))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


def direction(x: torch.Tensor, y: torch.Tensor, gamma: float, max_bytes: int = DEFAULT_MAX_BYTES,
              kernel: Kernel = phi) -> torch.Tensor:
    """W_n = sum_k Phi(x_n, x_k) y_k x_k for every training sample (Thm 3.3's direction, N x d)."""
    weighted = y[:, None] * x
    return torch.cat([kernel(x[rows], x, gamma) @ weighted for rows in _row_chunks(len(x), len(x), max_bytes)])


def f_hat(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor, gamma: float,
          max_bytes: int = DEFAULT_MAX_BYTES, kernel: Kernel = phi) -> torch.Tensor:
    """f-hat(z) = (1/N) sum_n Phi(x_n, z) y_n <x_n, z> for every row z."""
    out = []
    for cols in _row_chunks(len(z), len(x), max_bytes):
        zc = z[cols]
        out.append((kernel(x, zc, gamma) * (x @ zc.T) * y[:, None]).sum(0) / len(x))
    return torch.cat(out)


def g_hat(x_adv: torch.Tensor, w: torch.Tensor, z: torch.Tensor, gamma: float,
          max_bytes: int = DEFAULT_MAX_BYTES, kernel: Kernel = phi) -> torch.Tensor:
    """g-hat(z) = (1/N^2) sum_n Phi(x_adv_n, z) sum_k Phi(x_n, x_k) y_k <x_k, z>, with w = direction(x, y)."""
    n = len(x_adv)
    out = []
    for cols in _row_chunks(len(z), n, max_bytes):
        zc = z[cols]
        out.append((kernel(x_adv, zc, gamma) * (w @ zc.T)).sum(0) / n**2)
    return torch.cat(out)


def limit_scales(x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, w: torch.Tensor, gamma: float,
                 kernel: Kernel = phi) -> tuple[float, float]:
    """The typical size of f-hat and g-hat: their mean absolute value over the training set D.

    The theorem's margins hide their constants in O~(.), and f-hat, g-hat scale with |x|^2, d
    and the data set; relative margins are fractions of these sizes, so one margin means the
    same on every data set, dimension and map. On D, f-hat(x_n) = <x_n, w_n> / N (Phi is
    symmetric), so only g-hat needs a kernel."""
    f_on_d = (x * w).sum(1) / len(x)
    return f_on_d.abs().mean().item(), g_hat(x_adv, w, x, gamma, kernel=kernel).abs().mean().item()


def unit_scales(x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, w: torch.Tensor, gamma: float,
                kernel: Kernel = phi) -> tuple[float, float]:
    """Margins in the limits' own units."""
    return 1.0, 1.0


# How the margins of conditions (a) and (b) are measured: as fractions of the limits' size on
# D (see limit_scales), or in the limits' own units.
MARGIN_SCALES: dict[str, Callable[..., tuple[float, float]]] = {
    "relative": limit_scales,
    "absolute": unit_scales,
}


def conditions(fh: torch.Tensor, gh: torch.Tensor, margin_f: float, margin_g: float,
               scales: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where the prediction-matching conditions hold: (a) |f-hat| > margin_f, (b) |g-hat| >
    margin_g (each margin times its scale), (c) sign f-hat = sign g-hat (sign 0 is its own, as
    the authors' `sign()`)."""
    return fh.abs() > margin_f * scales[0], gh.abs() > margin_g * scales[1], torch.sign(fh) == torch.sign(gh)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity (0 where a row is zero)."""
    similarity: torch.Tensor = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)
    return similarity


def random_abs_cosine(d: int) -> float:
    """E|cos| between a fixed vector and a uniformly random direction in d dimensions (~ sqrt(2/(pi d)))."""
    return math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)
