"""What each stage computes for one unit, and a workspace that runs units against the store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from pl_dsl.attack import draw_targets, perturb, perturbation_norm
from pl_dsl.data import Dataset, make_dataset
from pl_dsl.errors import StageFailure
from pl_dsl.mapplot import save_map
from pl_dsl.nn import Divergence, TwoLayerNet, build_network, labels_of, outputs, predict, train
from pl_dsl.paths import Layout
from pl_dsl.plan import Unit
from pl_dsl.rng import stream_seed
from pl_dsl.store import atomic_path, read_json, write_json
from pl_dsl.theory import cosine, direction, f_hat, g_hat, random_abs_cosine


def _run_list(unit: Unit) -> str:
    more = len(unit.runs) - 5
    return ", ".join(unit.runs[:5]) + (f" and {more} more" if more > 0 else "")


def resolve_device(unit: Unit, cuda_index: int | None = None) -> torch.device:
    """`auto` means CUDA when present, else CPU; `cuda` without CUDA is an error.

    cuda_index is the device this job claimed; without one, torch's current device is used.
    """
    requested = unit.device
    if requested == "cuda" and not torch.cuda.is_available():
        raise StageFailure(f"run {_run_list(unit)}: device 'cuda' was requested but PyTorch sees no CUDA "
                           "device; use device: auto or cpu")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", cuda_index) if cuda_index is not None else torch.device("cuda")


def _accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return (pred == labels).sum().item() / len(labels)


class Workspace:
    """Computes units into a store, reusing what exists and caching data and models in memory."""

    def __init__(self, layout: Layout, cuda_index: int | None = None) -> None:
        self.layout = layout
        self.cuda_index = cuda_index
        self._data: dict[str, Dataset] = {}
        self._artifacts: dict[tuple[str, str], Any] = {}

    def has(self, unit: Unit) -> bool:
        return self.layout.unit(unit.stage, unit.key).exists()

    def dataset(self, unit: Unit, device: torch.device) -> Dataset:
        cache_key = f"{unit.params['seed']}:{sorted(unit.params['data'].items())}:{device}"
        if cache_key not in self._data:
            self._data[cache_key] = make_dataset(unit.params["data"], unit.params["seed"]).to(device)
        return self._data[cache_key]

    def load(self, stage: str, key: str) -> Any:
        if (stage, key) not in self._artifacts:
            path = self.layout.unit(stage, key)
            self._artifacts[(stage, key)] = (read_json(path) if stage == "evaluate"
                                             else torch.load(path, map_location="cpu", weights_only=True))
        return self._artifacts[(stage, key)]

    def network(self, stage: str, key: str, params: dict[str, Any], device: torch.device) -> TwoLayerNet:
        """Rebuild a trained network from its stored state."""
        art = self.load(stage, key)
        model = build_network(params["network"], params["data"]["dim"], torch.Generator())
        model.load_state_dict(art["state"])
        return model.to(device)

    def compute(self, unit: Unit) -> bool:
        """Compute and store the unit unless it is already stored; returns True if computed."""
        if self.has(unit):
            return False
        device = resolve_device(unit, self.cuda_index)
        start = time.perf_counter()
        try:
            artifact = getattr(self, f"_{unit.stage}")(unit, device)
        except Divergence as exc:
            raise StageFailure(
                f"run {_run_list(unit)}: {unit.stage} diverged at step {exc.step} (loss = {exc.value}); "
                "lower the learning rate or change the loss") from None
        seconds = time.perf_counter() - start
        path = self.layout.unit(unit.stage, unit.key)
        if path.suffix == ".json":
            artifact[f"time_{unit.stage}"] = seconds
            write_json(path, artifact)
        elif path.suffix == ".npz":
            save_map(artifact, seconds, path, self.layout.map_figure(unit.key), unit.runs)
        else:
            artifact["seconds"] = seconds
            with atomic_path(path) as tmp:
                torch.save(artifact, tmp)
        self._artifacts[(unit.stage, unit.key)] = artifact
        return True

    def _init_generator(self, unit: Unit, role: str) -> torch.Generator:
        # Initialisation depends on seed, data and network only, so f trained with different
        # learning rates starts from the same weights (a fair learning-rate grid).
        params = unit.params
        return torch.Generator().manual_seed(stream_seed(params["seed"], role, params["data"], params["network"]))

    def _train_f(self, unit: Unit, device: torch.device) -> dict[str, Any]:
        data = self.dataset(unit, device)
        model = build_network(unit.params["network"], data.x.shape[1], self._init_generator(unit, "init_f")).to(device)
        losses = train(model, data.x, data.y, unit.params["train"])
        return {"state": {k: v.cpu() for k, v in model.state_dict().items()}, "final_loss": losses[-1] if losses else None,
                "loss": unit.params["train"]["loss"]}

    def _attack(self, unit: Unit, device: torch.device) -> dict[str, Any]:
        params, spec = unit.params, unit.params["attack"]
        data = self.dataset(unit, device)
        f_art = self.load("train_f", unit.upstream)
        f = self.network("train_f", unit.upstream, params, device)
        generator = torch.Generator().manual_seed(stream_seed(params["seed"], "targets", params["data"], spec["targets"]))
        y_adv = draw_targets(spec["targets"], data.y.cpu(), generator).to(device)
        delta = perturb(f, data.x, y_adv, f_art["loss"], spec)
        norms = perturbation_norm(delta, spec["norm"])
        success = _accuracy(predict(f, data.x + delta), y_adv)
        return {"delta": delta.cpu(), "y_adv": y_adv.cpu(), "attack_success": success,
                "pert_norm_mean": norms.mean().item(), "pert_norm_max": norms.max().item(),
                "target_mean": y_adv.mean().item()}

    def _adversarial_inputs(self, unit_params: dict[str, Any], data: Dataset, attack_art: dict[str, Any],
                            device: torch.device) -> torch.Tensor:
        delta = attack_art["delta"].to(device)
        return delta if unit_params["scenario"] == "a" else data.x + delta

    def _train_g(self, unit: Unit, device: torch.device) -> dict[str, Any]:
        data = self.dataset(unit, device)
        attack_art = self.load("attack", unit.upstream)
        x_adv = self._adversarial_inputs(unit.params, data, attack_art, device)
        model = build_network(unit.params["network"], data.x.shape[1], self._init_generator(unit, "init_g")).to(device)
        losses = train(model, x_adv, attack_art["y_adv"].to(device), unit.params["train"])
        return {"state": {k: v.cpu() for k, v in model.state_dict().items()}, "final_loss": losses[-1] if losses else None,
                "scenario": unit.params["scenario"]}

    def _trained(self, unit: Unit, device: torch.device) -> tuple[Dataset, TwoLayerNet, TwoLayerNet,
                                                                    dict[str, Any], torch.Tensor]:
        """Data, f, g, the attack artifact and g's training inputs of a final-stage unit."""
        params = unit.params
        data = self.dataset(unit, device)
        f = self.network("train_f", params["f"], params, device)
        g = self.network("train_g", unit.upstream, params, device)
        attack_art = self.load("attack", params["attack"])
        scenario = self.load("train_g", unit.upstream)["scenario"]
        return data, f, g, attack_art, self._adversarial_inputs({"scenario": scenario}, data, attack_art, device)

    def _theory(self, unit: Unit, device: torch.device) -> dict[str, Any]:
        data, f, g, attack_art, x_adv = self._trained(unit, device)
        gamma, margins = unit.params["network"]["leaky_slope"], unit.params["margins"]
        w = direction(data.x, data.y, gamma)
        delta, y_adv = attack_art["delta"].to(device), attack_art["y_adv"].to(device)
        fh, gh = f_hat(data.x, data.y, data.x_test, gamma), g_hat(x_adv, w, data.x_test, gamma)
        f_sign, g_sign = predict(f, data.x_test), predict(g, data.x_test)
        cond_a, cond_b = fh.abs() > margins["margin_f"], gh.abs() > margins["margin_g"]
        cond_c = labels_of(fh) == labels_of(gh)
        every = cond_a & cond_b & cond_c
        return {
            "cos_abs_mean": cosine(delta, w).abs().mean().item(),
            "cos_signed_mean": cosine(delta, y_adv[:, None] * w).mean().item(),
            "cos_random": random_abs_cosine(data.x.shape[1]),
            "fhat_agrees_f": _accuracy(labels_of(fh), f_sign),
            "ghat_agrees_g": _accuracy(labels_of(gh), g_sign),
            "cond_a": cond_a.float().mean().item(), "cond_b": cond_b.float().mean().item(),
            "cond_c": cond_c.float().mean().item(), "cond_all": every.float().mean().item(),
            "agreement_cond_all": _accuracy(f_sign[every], g_sign[every]) if every.any() else None,
        }

    def _decision_map(self, unit: Unit, device: torch.device) -> dict[str, Any]:
        data, f, g, _, x_adv = self._trained(unit, device)
        gamma, margins, grid = unit.params["network"]["leaky_slope"], unit.params["margins"], unit.params["grid"]
        u, v = data.x[data.y > 0].mean(0), data.x[data.y < 0].mean(0)
        basis = torch.stack([u / u.norm(), v / v.norm()])
        # Coordinates (s, t) of each training point in the plane: least squares on z = s*u + t*v.
        coords = torch.linalg.lstsq(basis.T.cpu().double(), data.x.T.cpu().double()).solution.T.float()
        if grid["limits"] == "auto":
            low, high = coords.min(0).values, coords.max(0).values
            pad = (high - low) * grid["padding"]
            limits = [float(x) for x in (low[0] - pad[0], high[0] + pad[0], low[1] - pad[1], high[1] + pad[1])]
        else:
            limits = [float(x) for x in grid["limits"]]
        res = grid["resolution"]
        s_axis, t_axis = torch.linspace(limits[0], limits[1], res), torch.linspace(limits[2], limits[3], res)
        tt, ss = torch.meshgrid(t_axis, s_axis, indexing="ij")  # rows follow t, columns follow s
        plane = torch.stack([ss.flatten(), tt.flatten()], 1)
        w = direction(data.x, data.y, gamma)
        fields: dict[str, list[torch.Tensor]] = {"f": [], "g": [], "fhat": [], "ghat": []}
        chunk = max(1, (64 * 2**20) // (4 * max(data.x.shape[1], len(data.x))))
        for start in range(0, len(plane), chunk):
            z = plane[start:start + chunk].to(device) @ basis
            fields["f"].append(outputs(f, z).cpu())
            fields["g"].append(outputs(g, z).cpu())
            fields["fhat"].append(f_hat(data.x, data.y, z, gamma).cpu())
            fields["ghat"].append(g_hat(x_adv, w, z, gamma).cpu())
        maps = {name: torch.cat(parts).reshape(res, res) for name, parts in fields.items()}
        return {
            **maps, "s": s_axis, "t": t_axis, "limits": torch.tensor(limits),
            "cond_a": maps["fhat"].abs() > margins["margin_f"], "cond_b": maps["ghat"].abs() > margins["margin_g"],
            "cond_c": labels_of(maps["fhat"]) == labels_of(maps["ghat"]),
            "agree": labels_of(maps["f"]) == labels_of(maps["g"]),
            "data_st": coords, "data_y": data.y.cpu(), "cos_uv": (basis[0] @ basis[1]).cpu(),
        }

    def _evaluate(self, unit: Unit, device: torch.device) -> dict[str, Any]:
        data, f, g, attack_art, x_adv = self._trained(unit, device)
        f_test, g_test = predict(f, data.x_test), predict(g, data.x_test)
        return {
            "f_train_acc": _accuracy(predict(f, data.x), data.y),
            "f_test_acc": _accuracy(f_test, data.y_test),
            "g_clean_acc": _accuracy(predict(g, data.x), data.y),
            "g_adv_train_acc": _accuracy(predict(g, x_adv), attack_art["y_adv"].to(device)),
            "g_test_acc": _accuracy(g_test, data.y_test),
            "agreement": _accuracy(f_test, g_test),
            **{k: attack_art[k] for k in ("attack_success", "pert_norm_mean", "pert_norm_max", "target_mean")},
            "time_train_f": self.load("train_f", unit.params["f"])["seconds"],
            "time_attack": attack_art["seconds"],
            "time_train_g": self.load("train_g", unit.upstream)["seconds"],
            "device": str(device),
        }


def run_in_process(runs_units: list[dict[str, Unit]], layout: Layout) -> int:
    """Compute the units of the given runs one run after another in this process.

    Returns how many units were computed (units already stored are reused).
    """
    workspace = Workspace(layout)
    computed = 0
    for units in runs_units:
        for unit in units.values():
            computed += workspace.compute(unit)
    return computed
