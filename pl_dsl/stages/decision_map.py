"""decision_map: the paper's Figure 2 for one run, on the plane of the normalised class means:
where f and g agree, their zero levels, where conditions (a), (b), (c) hold, and the data."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from functools import partial
from typing import Any

from pl_dsl.engine.registry import Output, Stage, UnitContext
from pl_dsl.science import KERNEL_BLOCK_BYTES
from pl_dsl.spec.config import DecisionMapConfig, TheoryConfig
from pl_dsl.stages.common import TRAINED_INPUTS, TrainedParams, trained, working_bytes


@dataclass(frozen=True)
class DecisionMapParams(TrainedParams):
    theory: TheoryConfig  # its margins draw conditions (a) and (b)
    decision_map: DecisionMapConfig


def compute(ctx: UnitContext, params: DecisionMapParams) -> Output:
    import torch

    from pl_dsl.report.mapplot import draw_map
    from pl_dsl.science.nn import labels_of, outputs
    from pl_dsl.science.theory import direction, f_hat, g_hat

    data, f, g, _, x_adv = trained(ctx, params)
    gamma, grid, margins = params.network.leaky_slope, params.decision_map, params.theory
    u, v = data.x[data.y > 0].mean(0), data.x[data.y < 0].mean(0)
    basis = torch.stack([u / u.norm(), v / v.norm()])
    # Coordinates (s, t) of each training point in the plane: least squares on z = s*u + t*v.
    coords = torch.linalg.lstsq(basis.T.cpu().double(), data.x.T.cpu().double()).solution.T.float()
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
    w = direction(data.x, data.y, gamma)
    fields: dict[str, list[torch.Tensor]] = {"f": [], "g": [], "fhat": [], "ghat": []}
    chunk = max(1, (64 * 2**20) // (4 * max(data.x.shape[1], len(data.x))))
    for start in range(0, len(plane), chunk):
        z = plane[start:start + chunk].to(ctx.device) @ basis
        fields["f"].append(outputs(f, z).cpu())
        fields["g"].append(outputs(g, z).cpu())
        fields["fhat"].append(f_hat(data.x, data.y, z, gamma).cpu())
        fields["ghat"].append(g_hat(x_adv, w, z, gamma).cpu())
    maps = {name: torch.cat(parts).reshape(res, res) for name, parts in fields.items()}
    arrays: dict[str, Any] = {
        **maps, "s": s_axis, "t": t_axis, "limits": torch.tensor(limits),
        "cond_a": maps["fhat"].abs() > margins.margin_f, "cond_b": maps["ghat"].abs() > margins.margin_g,
        "cond_c": labels_of(maps["fhat"]) == labels_of(maps["ghat"]),
        "agree": labels_of(maps["f"]) == labels_of(maps["g"]),
        "data_st": coords, "data_y": data.y.cpu(), "cos_uv": (basis[0] @ basis[1]).cpu(),
        # Peak resident memory of this process so far (Linux reports KiB).
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    numpy_arrays = {name: value.numpy() if hasattr(value, "numpy") else value for name, value in arrays.items()}
    every = arrays["cond_a"] & arrays["cond_b"] & arrays["cond_c"]
    title = (f"decision map: {params.data.kind}, d = {data.x.shape[1]}, N = {len(data.x)}, "
             f"m = {params.network.width}, scenario {params.scenario}, seed {params.seed}")
    figure = partial(draw_map, numpy_arrays, title=title)
    return Output({"decision_map.npz": arrays, "decision_map.png": figure}, {
        "map_agree": arrays["agree"].float().mean().item(),
        "map_cond_all": every.float().mean().item(),
    })


def cost(params: DecisionMapParams) -> float:
    n_train = params.sizes()[0]
    return 6.0 * params.decision_map.resolution ** 2 * (n_train * params.data.dim + params.per_sample())


STAGE = Stage(
    name="decision_map", params=DecisionMapParams, compute=compute, cost=cost, inputs=TRAINED_INPUTS,
    memory=lambda params: working_bytes(params, 3) + KERNEL_BLOCK_BYTES + 20.0 * params.decision_map.resolution ** 2,
    switch="decision_map.enabled", run_files=("decision_map.npz", "decision_map.png"),
    writes={"decision_map.npz": "the grid, f, g, f-hat, g-hat, the conditions and the projected data",
            "decision_map.png": "the map drawn"},
    metrics={"map_agree": "fraction of the decision-map grid where sign f = sign g",
             "map_cond_all": "fraction of the decision-map grid where conditions (a), (b), (c) all hold"},
    batch_size=8,
)
