"""Drawing decision maps as the authors drew them (their Figure 2, `notebooks/map.py`): where f and
g agree (grey) or not (green), the theory's zero lines f-hat = 0 (red) and g-hat = 0 (black,
dashed), and the training data; one run's map alone, or several in a grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

AGREE, DISAGREE = "#cccccc", "#8de5a1"  # the authors' grey and light green
POSITIVE, NEGATIVE = ("#4c72b0", "#2a3f66"), ("#dd8452", "#8a4a22")  # fill and edge of the two classes


def draw_on(ax: Any, data: dict[str, np.ndarray], title: str, conditions: bool = False) -> None:
    """One map on a matplotlib axis; with `conditions`, the region where (a), (b), (c) do not all hold
    (bands along the theory's zero lines) is hatched."""
    from matplotlib.colors import ListedColormap

    low_s, high_s, low_t, high_t = (float(x) for x in data["limits"])
    extent = (low_s, high_s, low_t, high_t)
    ax.imshow(data["agree"], origin="lower", extent=extent, aspect="auto", interpolation="nearest",
              cmap=ListedColormap([DISAGREE, AGREE]), vmin=0, vmax=1)
    s, t = data["s"], data["t"]
    if conditions:
        every = data["cond_a"] & data["cond_b"] & data["cond_c"]
        if every.any() and not every.all():
            hatched = ax.contourf(s, t, (~every).astype(float), levels=[0.5, 1.5], colors="none", hatches=["////"])
            hatched.set_edgecolor("#555555")
            hatched.set_linewidth(0.0)
    points, labels = data["data_st"], data["data_y"]
    for label, marker, (fill, edge) in ((1, "o", POSITIVE), (-1, "X", NEGATIVE)):
        chosen = points[labels == label]
        ax.scatter(chosen[:, 0], chosen[:, 1], s=24, marker=marker, c=fill, edgecolors=edge, linewidths=0.5,
                   alpha=0.3, rasterized=True)
    for name, color, style in (("fhat", "red", "solid"), ("ghat", "black", "dashed")):
        values = data[name]
        if values.min() < 0 < values.max():
            ax.contour(s, t, values, levels=[0.0], colors=[color], linestyles=[style], linewidths=1.4)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal" if np.isclose(high_s - low_s, high_t - low_t) else "auto")
    ax.set_title(title, fontsize=12)


def legend_handles(conditions: bool = False) -> list[Any]:
    """The legend of a map, in the authors' wording (plus the hatched conditions region when drawn)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=AGREE, label=r"$\mathrm{sgn}\,f(z) = \mathrm{sgn}\,g(z)$"),
               Patch(color=DISAGREE, label=r"$\mathrm{sgn}\,f(z) \neq \mathrm{sgn}\,g(z)$"),
               Line2D([], [], color="red", label=r"$\hat{f}(z) = 0$"),
               Line2D([], [], color="black", ls="--", label=r"$\hat{g}(z) = 0$"),
               Line2D([], [], marker="o", ls="", color=POSITIVE[0], alpha=0.6, label="Positive samples"),
               Line2D([], [], marker="X", ls="", color=NEGATIVE[0], alpha=0.6, label="Negative samples")]
    if conditions:
        handles.append(Patch(facecolor="none", edgecolor="#555555", hatch="////", label="(a), (b), (c) do not all hold"))
    return handles


def _summary(data: dict[str, np.ndarray]) -> str:
    """The map's measured fractions, for a single map's subtitle."""
    every = data["cond_a"] & data["cond_b"] & data["cond_c"]
    inside = f"{data['agree'][every].mean():.3f}" if every.any() else "-"
    return (f"agree {data['agree'].mean():.3f}; (a)-(c) hold on {every.mean():.3f}, agree there {inside}; "
            f"cos(u, v) = {float(data['cos_uv']):.2f}")


def draw_map(data: dict[str, np.ndarray], png: Path, title: str = "decision map") -> None:
    """One run's map with the conditions region, saved as PNG (the store writes through a temporary path)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 6.4), layout="constrained")
    draw_on(ax, data, f"{title}\n{_summary(data)}", conditions=True)
    ax.title.set_fontsize(9)
    ax.set_xlabel("along u (normalised mean of class +1)")
    ax.set_ylabel("along v (normalised mean of class -1)")
    fig.legend(handles=legend_handles(conditions=True), loc="outside lower center", ncol=4, fontsize=8)
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
