"""The cost model's throughput, measured on this machine's devices (`pl-dsl doctor --calibrate`).

The stages' cost estimates count multiply-adds; turning them into seconds needs the rate a
device sustains on these shapes. Without a calibration the rate is the CPU core measured when
the model was written (plan.CORE_MULTIPLY_ADDS_PER_SECOND). A calibration stores, per device
kind, the rate of one net trained alone and, on CUDA, of nets trained as one stack; cluster
runtime requests and `pl-dsl runs --summary --device` read it. Planning (batches, fusion)
keeps the fixed rate, so a calibration never changes which jobs a spec makes.
Torch is imported only to measure.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

# A training step of the shapes the paper uses most (Shifted Gauss / MNIST-like): the rate is
# measured on this shape, full-batch, identity loss, SGD with momentum.
SHAPE = {"dim": 784, "samples": 2000, "width": 100, "steps": 30}
STACK = 32  # nets per stack for the stacked CUDA rate


def calibration_file() -> Path:
    """Where the calibration lives: $PL_DSL_CALIBRATION, else ~/.cache/pl-dsl/calibration.json."""
    named = os.environ.get("PL_DSL_CALIBRATION")
    return Path(named) if named else Path.home() / ".cache" / "pl-dsl" / "calibration.json"


def load() -> dict[str, Any]:
    """The stored calibration ({} when there is none or it cannot be read)."""
    try:
        data: dict[str, Any] = json.loads(calibration_file().read_text(encoding="utf-8"))
        return data
    except (OSError, ValueError):
        return {}


def rate(device: str, stacked: bool = False, calibration: dict[str, Any] | None = None) -> float | None:
    """Calibrated multiply-adds per second of a device kind ('cpu' or 'cuda'; 'auto' reads as
    cuda when calibrated there, else cpu), stacked nets' rate where asked and measured; None
    when that kind is not calibrated."""
    calibration = load() if calibration is None else calibration
    kind = ("cuda" if "cuda" in calibration else "cpu") if device == "auto" else device
    entry = calibration.get(kind)
    if not entry:
        return None
    value = entry.get("stacked_multiply_adds_per_second") if stacked else None
    return float(value or entry["multiply_adds_per_second"])


def training_seconds(device: Any, count: int, stacked: bool, shape: dict[str, int]) -> float:
    """Seconds to train `count` nets of `shape` on `device`, one after another or stacked."""
    import torch

    from pl_dsl.science.nn import build_network, train, train_stacked
    from pl_dsl.spec.config import NetworkConfig, TrainingConfig

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(shape["samples"], shape["dim"], generator=generator).to(device)
    y = torch.where(torch.randn(shape["samples"], generator=generator) > 0, 1.0, -1.0).to(device)
    network = NetworkConfig(width=shape["width"], leaky_slope=0.0, readout="gaussian", bias=False)
    config = TrainingConfig(loss="identity", steps=shape["steps"], lr=0.1, optimizer="sgd", momentum=0.9,
                            schedule="constant", precision="fp32")
    nets = [build_network(network, shape["dim"], torch.Generator().manual_seed(i)).to(device) for i in range(count)]

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    synchronize()
    start = time.perf_counter()
    if stacked:
        train_stacked(nets, [x] * count, [y] * count, [config] * count, [{config.steps}] * count,
                      on_snapshot=lambda *args: None, on_diverged=lambda *args: None)
    else:
        for net in nets:
            train(net, x, y, config)
    synchronize()
    return time.perf_counter() - start


def measure(device_kind: str, shape: dict[str, int] | None = None, stack: int = STACK) -> dict[str, Any]:
    """Rates of one device kind on `shape`: one net alone and, on CUDA, `stack` nets stacked
    (multiply-adds counted as the stages count them: 3 per sample, input and hidden unit, per step)."""
    import torch

    shape = shape or SHAPE
    device = torch.device(device_kind)
    work = 3.0 * shape["steps"] * shape["samples"] * shape["dim"] * shape["width"]
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # the cost model counts CPU core-seconds
    try:
        training_seconds(device, 1, False, {**shape, "steps": 2})  # warm-up
        alone = min(training_seconds(device, 1, False, shape) for _ in range(3))
    finally:
        torch.set_num_threads(threads)
    entry: dict[str, Any] = {"multiply_adds_per_second": work / alone, "shape": shape, "torch": torch.__version__,
                             "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if device.type == "cuda":
        entry["device_name"] = torch.cuda.get_device_name(device)
        training_seconds(device, stack, True, {**shape, "steps": 2})
        entry["stacked_multiply_adds_per_second"] = stack * work / training_seconds(device, stack, True, shape)
        entry["stack"] = stack
    return entry


def calibrate(shape: dict[str, int] | None = None) -> dict[str, Any]:
    """Measure every device kind torch sees here and store the result (other kinds kept)."""
    import torch

    calibration = load()
    calibration["cpu"] = measure("cpu", shape)
    if torch.cuda.is_available():
        calibration["cuda"] = measure("cuda", shape)
    path = calibration_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(calibration, indent=1) + "\n", encoding="utf-8")
    return calibration
