"""The description of a sweep: a :class:`SweepConfig`, from arguments or a YAML/JSON file.

A sweep file holds the same keys as the options of ``approxsim sweep`` (with ``_`` or ``-``)::

    model: lenet5
    dataset: mnist
    data_dir: ../shared/data/mnist
    multipliers: [fp32, bf16, mbm7, mitchell7]
    epochs: 5
    batch_size: 32
    out: runs/lenet5-mnist
    mode: qat                 # or ptq: train fp32 once, then quantize and evaluate every circuit

Options given on the command line override the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["SweepConfig", "load_sweep_file", "OPTIMIZERS", "STRATEGIES", "MODES", "IDENTITY_KEYS"]

OPTIMIZERS = ("adam", "sgd", "momentum", "adamw", "rmsprop")
STRATEGIES = ("none", "mirrored", "multiworker")
MODES = ("qat", "ptq")  # see approxsim.sweep.ptq
# Keys that must match between a sweep and the outputs it resumes or merges with.
IDENTITY_KEYS = ("model", "dataset", "batch_size", "lr", "optimizer", "weight_decay", "seed", "backward",
                 "limit_train", "limit_test", "dataset_options", "mode", "calibration_examples")


@dataclass
class SweepConfig:
    """Everything that defines a sweep (see ``approxsim sweep --help`` for each option)."""

    model: str
    dataset: str
    multipliers: list
    epochs: int
    out: str
    batch_size: int = 32
    lr: Optional[float] = None
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0
    backward: str = "approx"
    backend: Optional[str] = None
    data_dir: Optional[str] = None
    limit_train: Optional[int] = None
    limit_test: Optional[int] = None
    resume: bool = False
    strategy: str = "none"
    verbose: int = 1
    initial_weights: Optional[str] = None
    dataset_options: dict = field(default_factory=dict)
    mode: str = "qat"
    calibration_examples: int = 256
    plot_pareto: bool = False

    def __post_init__(self):
        if isinstance(self.multipliers, str):
            self.multipliers = [m.strip() for m in self.multipliers.split(",") if m.strip()]
        self.multipliers = list(self.multipliers)
        if not self.multipliers:
            raise ValueError("A sweep needs at least one multiplier, e.g. --multipliers fp32,mbm7. "
                             f"Received: multipliers={self.multipliers!r}")
        for key in ("epochs", "batch_size", "seed", "calibration_examples"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
                raise ValueError(f"{key} must be a {'non-negative' if key == 'seed' else 'positive'} integer. "
                                 f"Received: {key}={value!r}")
        if self.lr is None:
            self.lr = 0.1 if self.optimizer in ("sgd", "momentum") else 1e-3
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not self.lr > 0:
            raise ValueError(f"lr must be a positive number. Received: lr={self.lr!r}")
        self.lr = float(self.lr)
        self.optimizer = str(self.optimizer).lower()
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer. Choose one of: {', '.join(OPTIMIZERS)}. "
                             f"Received: optimizer={self.optimizer!r}")
        if self.backward not in ("approx", "exact"):
            raise ValueError(f"backward must be 'approx' or 'exact'. Received: backward={self.backward!r}")
        self.strategy = str(self.strategy).lower()
        if self.strategy not in STRATEGIES:
            raise ValueError(f"Unknown strategy. Choose one of: {', '.join(STRATEGIES)}. "
                             f"Received: strategy={self.strategy!r}")
        self.mode = str(self.mode).lower()
        if self.mode not in MODES:
            raise ValueError(f"Unknown mode. Choose qat (train with each circuit) or ptq (train fp32 once, then "
                             f"quantize it for each circuit). Received: mode={self.mode!r}")
        if not isinstance(self.plot_pareto, bool):
            raise ValueError(f"plot_pareto must be true or false. Received: plot_pareto={self.plot_pareto!r}")
        if not self.out:
            raise ValueError(f"A sweep needs an output folder (--out DIR). Received: out={self.out!r}")
        self.out = os.fspath(self.out)
        if not isinstance(self.dataset_options, dict):
            raise ValueError(f"dataset_options must be a mapping. Received: dataset_options={self.dataset_options!r}")

    def identity(self) -> dict:
        """The settings that must agree for runs to be comparable (resume, merge)."""
        return {k: getattr(self, k) for k in IDENTITY_KEYS}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "the sweep") -> "SweepConfig":
        """Builds a config from a mapping; keys may use ``-`` or ``_``; unknown keys are errors."""
        if not isinstance(data, dict):
            raise ValueError(f"{source} must be a mapping of option names to values. Received: {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        clean = {}
        for key, value in data.items():
            k = str(key).replace("-", "_")
            if k not in names:
                raise ValueError(f"Unknown key {key!r} in {source}. Known keys: {', '.join(sorted(names))}.")
            clean[k] = value
        missing = [k for k in ("model", "dataset", "multipliers", "epochs", "out") if k not in clean]
        if missing:
            raise ValueError(f"{source} lacks {', '.join(missing)}: give them in the file or as options "
                             f"(--{' --'.join(m.replace('_', '-') for m in missing)}).")
        return cls(**clean)


def load_sweep_file(path) -> dict:
    """Reads a YAML (``.yaml``/``.yml``) or JSON sweep file into a dict.

    Raises:
      FileNotFoundError: no such file.
      ValueError: not valid YAML/JSON, or not a mapping.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Sweep file not found. Received: config={path!r}")
    with open(path) as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ValueError("Reading a YAML sweep file needs PyYAML: pip install pyyaml "
                             "(or write the sweep as JSON).") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{path} is not valid YAML: {e}") from None
    else:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ValueError(f"{path} is not valid JSON ({e}). Name YAML files *.yaml or *.yml.") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of option names to values. Received: {type(data).__name__}")
    return data
