"""Drawing the decision map (the paper's Figure 2) of one run."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def draw_map(data: dict[str, np.ndarray], png: Path, title: str = "decision map") -> None:
    """Agreement of f and g, their zero levels, where all three conditions hold, and the data."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    low_s, high_s, low_t, high_t = (float(x) for x in data["limits"])
    extent = (low_s, high_s, low_t, high_t)
    every = data["cond_a"] & data["cond_b"] & data["cond_c"]
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.imshow(data["agree"], origin="lower", extent=extent, aspect="auto",
              cmap=ListedColormap(["#f4b6b6", "#cfe8cf"]), vmin=0, vmax=1)
    s, t = data["s"], data["t"]
    if every.any() and not every.all():
        ax.contourf(s, t, every.astype(float), levels=[0.5, 1.5], colors="none", hatches=["//"])
    for name, style, color in (("f", "-", "black"), ("g", "--", "tab:blue")):
        values = data[name]
        if values.min() < 0 < values.max():
            ax.contour(s, t, values, levels=[0.0], colors=color, linestyles=style, linewidths=1.5)
    points, labels = data["data_st"], data["data_y"]
    step = max(1, len(points) // 2000)
    ax.scatter(points[::step, 0], points[::step, 1], s=9, c=np.where(labels[::step] > 0, "tab:orange", "tab:purple"),
               alpha=0.6, linewidths=0)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("s (along u, normalised mean of class +1)")
    ax.set_ylabel("t (along v, normalised mean of class -1)")
    ax.set_title(f"{title}\nagree {data['agree'].mean():.3f}, all conditions hold on {every.mean():.3f} "
                 f"of the grid; cos(u, v) = {float(data['cos_uv']):.2f}", fontsize=9)
    ax.legend(handles=[Patch(color="#cfe8cf", label="sign f = sign g"), Patch(color="#f4b6b6", label="sign f != sign g"),
                       Patch(facecolor="none", hatch="//", label="(a), (b), (c) all hold"),
                       Line2D([], [], color="black", label="f = 0"), Line2D([], [], color="tab:blue", ls="--", label="g = 0"),
                       Line2D([], [], marker="o", ls="", color="tab:orange", label="train, y=+1"),
                       Line2D([], [], marker="o", ls="", color="tab:purple", label="train, y=-1")],
              fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(png, format="png", dpi=110)  # the store writes through a temporary path
    plt.close(fig)
