"""decision_map: the paper's Figure 2 for one run, on the plane of the normalised class means:
where f and g agree, their zero levels, where conditions (a), (b), (c) hold, and the data."""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from pl_dsl.engine.registry import Output, Stage, UnitContext
from pl_dsl.science import KERNEL_BLOCK_BYTES
from pl_dsl.spec.config import DecisionMapConfig, TheoryConfig
from pl_dsl.spec.sections import Section, schema_beside
from pl_dsl.stages.common import TRAINED_INPUTS, TrainedParams, load_trained, working_bytes

if TYPE_CHECKING:
    import torch

    from pl_dsl.science.theory import Kernel


def _closed_form() -> Kernel:
    from pl_dsl.science.theory import phi

    return phi


def _closed_form_in_plane(dim: int) -> Kernel:
    from pl_dsl.science.theory import phi

    return partial(phi, dim=dim)


def _their_estimate() -> Kernel:
    from pl_dsl.science.reference import their_phi

    return their_phi


@dataclass(frozen=True)
class MapKernel:
    """The kernel Phi of a map's f-hat and g-hat, and, for a kernel that reads only inner
    products and norms, the same kernel on rows given in a plane's three coordinates of R^dim
    (science.theory.PlaneCoordinates: the map's points are computed there, each N x M product 3
    multiply-adds a pair instead of d); None for a Monte-Carlo estimate, which draws vectors of
    length d."""

    load: Callable[[], Kernel]
    in_plane: Callable[[int], Kernel] | None


# Per random streams (`rng`): the closed form, or the authors' Monte-Carlo estimate as their
# map.py computes it (science/reference.py), on the map's points as they are.
KERNELS: dict[str, MapKernel] = {"pl-dsl": MapKernel(_closed_form, _closed_form_in_plane),
                                 "reference": MapKernel(_their_estimate, None)}


@dataclass(frozen=True)
class DecisionMapParams(TrainedParams):
    theory: TheoryConfig  # its margins draw conditions (a) and (b)
    decision_map: DecisionMapConfig


def compute(ctx: UnitContext, params: DecisionMapParams) -> Output:
    import torch

    from pl_dsl.errors import lookup
    from pl_dsl.report.mapplot import draw_map
    from pl_dsl.science.nn import labels_of, outputs
    from pl_dsl.science.theory import MARGIN_SCALES, PlaneCoordinates, conditions, direction, f_hat, g_hat

    data, f, g, _, x_adv = load_trained(ctx, params)
    gamma, grid, margins = params.network.leaky_slope, params.decision_map, params.theory
    u, v = data.x[data.y > 0].mean(0), data.x[data.y < 0].mean(0)
    basis = torch.stack([u / u.norm(), v / v.norm()])
    # The training points drawn on the plane at (<x, u>, <x, v>), as the authors' map.py does
    # (their exact coordinates when u and v are orthogonal).
    coords = (data.x @ basis.T).cpu()
    if isinstance(grid.limits, str):  # "auto": the projected data, widened by the padding
        low, high = coords.min(0).values, coords.max(0).values
        pad = (high - low) * grid.padding
        limits = [float(x) for x in (low[0] - pad[0], high[0] + pad[0], low[1] - pad[1], high[1] + pad[1])]
    else:
        limits = [float(x) for x in grid.limits]
    res = grid.resolution
    s_axis, t_axis = torch.linspace(limits[0], limits[1], res), torch.linspace(limits[2], limits[3], res)
    tt, ss = torch.meshgrid(t_axis, s_axis, indexing="ij")  # rows follow t, columns follow s
    plane = torch.stack([ss.flatten(), tt.flatten()], 1)
    declared = lookup(KERNELS, params.rng, "rng")
    kernel = declared.load()
    w = direction(data.x, data.y, gamma, kernel=kernel)
    # f-hat and g-hat read the map's points in the plane's three coordinates where the kernel
    # allows it (the same values, each N x M product 3 multiply-adds a pair instead of d)
    coordinates, x_at, x_adv_at, w_at, limit_kernel = None, data.x, x_adv, w, kernel
    if declared.in_plane is not None:
        coordinates = PlaneCoordinates(basis)
        x_at, x_adv_at, w_at = coordinates.of(data.x), coordinates.of(x_adv), coordinates.of(w)
        limit_kernel = declared.in_plane(data.x.shape[1])
    fields: dict[str, list[torch.Tensor]] = {"f": [], "g": [], "fhat": [], "ghat": []}
    chunk = max(1, (64 * 2**20) // (4 * max(data.x.shape[1], len(data.x))))
    for start in range(0, len(plane), chunk):
        points = plane[start:start + chunk].to(ctx.device)
        z = points @ basis
        fields["f"].append(outputs(f, z).cpu())
        fields["g"].append(outputs(g, z).cpu())
        at = coordinates.of_points(points) if coordinates is not None else z
        fields["fhat"].append(f_hat(x_at, data.y, at, gamma, kernel=limit_kernel).cpu())
        fields["ghat"].append(g_hat(x_adv_at, w_at, at, gamma, kernel=limit_kernel).cpu())
    maps = {name: torch.cat(parts).reshape(res, res) for name, parts in fields.items()}
    scales = lookup(MARGIN_SCALES, margins.margins, "margins")(data.x, data.y, x_adv, w, gamma, kernel=kernel)
    cond_a, cond_b, cond_c = conditions(maps["fhat"], maps["ghat"], margins.margin_f, margins.margin_g, scales)
    agree = labels_of(maps["f"]) == labels_of(maps["g"])
    arrays: dict[str, Any] = {
        **maps, "s": s_axis, "t": t_axis, "limits": torch.tensor(limits), "agree": agree,
        "cond_a": cond_a, "cond_b": cond_b, "cond_c": cond_c,
        "margins": torch.tensor([margins.margin_f * scales[0], margins.margin_g * scales[1]]),
        "data_st": coords, "data_y": data.y.cpu(), "cos_uv": (basis[0] @ basis[1]).cpu(),
        # Peak resident memory of this process so far (Linux reports KiB).
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    numpy_arrays = {name: value.numpy() if hasattr(value, "numpy") else value for name, value in arrays.items()}
    title = (f"{params.data.kind}, d = {data.x.shape[1]}, N = {len(data.x)}, m = {params.network.width}, "
             f"scenario {params.scenario}, seed {params.seed}")
    figure = partial(draw_map, numpy_arrays, title=title)
    return Output({"decision_map.npz": arrays, "decision_map.png": figure}, map_metrics(maps, cond_a & cond_b & cond_c))


def map_metrics(maps: dict[str, torch.Tensor], every: torch.Tensor) -> dict[str, float | None]:
    """The map's fractions: where f and g agree, where each lazy limit has its network's sign,
    where all conditions hold (`every`), and the agreement there (None when nowhere)."""
    from pl_dsl.science.nn import labels_of

    signs = {name: labels_of(values) for name, values in maps.items()}
    agree = signs["f"] == signs["g"]
    return {
        "map_agree": agree.float().mean().item(),
        "map_fhat_agrees_f": (signs["fhat"] == signs["f"]).float().mean().item(),
        "map_ghat_agrees_g": (signs["ghat"] == signs["g"]).float().mean().item(),
        "map_cond_all": every.float().mean().item(),
        "map_agree_cond_all": agree[every].float().mean().item() if every.any() else None,
    }


def cost(params: DecisionMapParams) -> float:
    n_train = params.sizes()[0]
    points = params.decision_map.resolution ** 2 + 2 * n_train  # the grid, and D (the direction, g-hat's scale)
    return 6.0 * points * (n_train * params.data.dim + params.per_sample())


def empty_limits(grid: Any) -> list[tuple[str, str]]:
    """Limits [s_min, s_max, t_min, t_max] must span a plane of positive area."""
    limits = grid.get("limits") if isinstance(grid, dict) else None
    if isinstance(limits, list) and len(limits) == 4 and all(isinstance(x, (int, float)) for x in limits) \
            and (limits[1] <= limits[0] or limits[3] <= limits[2]):
        return [("limits", f"{limits} spans no area: give [s_min, s_max, t_min, t_max] with s_min < s_max and "
                           "t_min < t_max")]
    return []


STAGE = Stage(
    name="decision_map", params=DecisionMapParams, compute=compute, cost=cost, inputs=TRAINED_INPUTS,
    memory=lambda params: working_bytes(params, 3) + KERNEL_BLOCK_BYTES + 20.0 * params.decision_map.resolution ** 2,
    switch="decision_map.enabled", run_files=("decision_map.npz", "decision_map.png"),
    writes={"decision_map.npz": "the grid, f, g, f-hat, g-hat, the conditions, their margins and the projected data",
            "decision_map.png": "the map drawn"},
    metrics={"map_agree": "fraction of the decision-map grid where sign f = sign g",
             "map_fhat_agrees_f": "fraction of the decision-map grid where sign f-hat = sign f (lazy-regime prediction of f)",
             "map_ghat_agrees_g": "fraction of the decision-map grid where sign g-hat = sign g (lazy-regime prediction of g)",
             "map_cond_all": "fraction of the decision-map grid where conditions (a), (b), (c) all hold",
             "map_agree_cond_all": "fraction of that region where sign f = sign g (the theorem: all of it; empty if "
                                   "the region is)"},
    batch_size=8, sections=(Section("decision_map", DecisionMapConfig, schema_beside(__file__), problems=empty_limits),),
)
