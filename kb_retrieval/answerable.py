"""The calibrated "no good answer" decision: a tiny logistic regression over a ranking's signals (signals.py).

The parameters come from data (`python -m kb_retrieval.calibrate`), not from hand-set thresholds, and live in
`calibration.json` next to this module, one entry per model family.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kb_retrieval.signals import RankingSignals


@dataclass(frozen=True)
class Calibration:
    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    model_fingerprint: str = ""
    note: str = ""
    model_family: str = ""

    def probability(self, signals: RankingSignals) -> float:
        x = signals.select(self.features)
        return float(predict(x, np.asarray(self.mean), np.asarray(self.std), np.asarray(self.weights), self.bias))

    def answerable(self, signals: RankingSignals) -> bool:
        return self.probability(signals) >= self.threshold

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            features=tuple(data["features"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            weights=tuple(data["weights"]),
            bias=float(data["bias"]),
            threshold=float(data["threshold"]),
            model_fingerprint=data.get("model_fingerprint", ""),
            note=data.get("note", ""),
            model_family=data.get("model_family", ""),
        )

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """The first calibration in a file (a single one, or the first of a `calibrations` list)."""
        return load_all(path)[0]


def load_all(path: Path) -> list[Calibration]:
    """Every calibration in a file: {"calibrations": [...]} (one per model family) or a single object."""
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = data["calibrations"] if isinstance(data, dict) and "calibrations" in data else [data]
    return [Calibration.from_dict(e) for e in entries]


def pick(calibrations: list[Calibration], family: str, fingerprint: str) -> tuple[Calibration | None, str]:
    """The calibration fitted for this very model, else for its family (the same base model and recipe, e.g. a
    fine-tune of another KB), else the first one; with how it matched ("model", "family", "fallback", "none")."""
    for c in calibrations:
        if c.model_fingerprint and c.model_fingerprint == fingerprint:
            return c, "model"
    for c in calibrations:
        if c.model_family and c.model_family == family:
            return c, "family"
    return (calibrations[0], "fallback") if calibrations else (None, "none")


def save_entry(path: Path, calibration: Calibration) -> None:
    """Write a calibration into a multi-model file, replacing the entry of the same family."""
    entries = [c for c in (load_all(path) if path.exists() else []) if c.model_family != calibration.model_family]
    entries.append(calibration)
    payload = {"calibrations": [asdict(c) for c in entries]}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None = None,
    l2: float = 1.0,
    iters: int = 3000,
    lr: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Class-balanced, optionally example-weighted L2 logistic regression by gradient descent.

    Returns (mean, std, weights, bias) with the features standardised by mean/std.
    """
    mean = np.nan_to_num(np.nanmean(x, axis=0), nan=0.0) if len(x) else np.zeros(x.shape[1])
    std = np.nan_to_num(np.nanstd(x, axis=0), nan=1.0) if len(x) else np.ones(x.shape[1])
    std[std < 1e-9] = 1.0
    xs = _standardized(x, mean, std)
    n, d = xs.shape
    sw = np.ones(n) if weights is None else weights.astype(np.float64)
    pos = float((sw * (y == 1)).sum())
    neg = float((sw * (y == 0)).sum())
    # Why balanced: sample questions make positives far more numerous than out-of-scope examples.
    sw = np.where(y == 1, sw * n / (2 * max(pos, 1e-9)), sw * n / (2 * max(neg, 1e-9)))
    w = np.zeros(d)
    b = 0.0
    for _ in range(iters):
        p = _logistic(xs @ w + b)
        g = sw * (p - y)
        w -= lr * (xs.T @ g / n + l2 * w / n)
        b -= lr * float(g.mean())
    return mean, std, w, b


def predict(x: np.ndarray, mean: np.ndarray, std: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """The fitted model's probabilities for rows of features (one row: a 0-d array)."""
    return _logistic(_standardized(x, mean, std) @ w + b)


def _standardized(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    # A signal that was not measured (NaN, e.g. english_top of a Chinese query) weighs as the average.
    return np.nan_to_num((x - mean) / std, nan=0.0)


def _logistic(z: np.ndarray) -> np.ndarray:
    # Why clipped: exp overflows far out, and ±40 already gives 0 or 1 to within 1e-17.
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0))))
