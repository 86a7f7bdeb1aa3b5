"""The calibrated "no good answer" decision: features of a ranking and a tiny logistic regression over them.

The parameters come from data (`python -m kb_retrieval.calibrate`), not from hand-set thresholds, and live in
`calibration.json` next to this module.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

FEATURES: tuple[str, ...] = (
    "dense_top",
    "dense_gap",
    "bm25_top_log",
    "bm25_gap_rel",
    "agree",
    "fused_dense",
    "coverage",
    "top_coverage",
    "idf_top_coverage",
    "dense_z",
    "english",
    "english_top",
    "mixed",
)


@dataclass(frozen=True)
class RankingSignals:
    """What a search saw, in a form the refusal model can use."""

    dense_top: float
    dense_second: float
    bm25_top: float
    bm25_second: float
    agree: bool
    fused_top_dense: float
    coverage: float  # share of query words known to the index
    top_coverage: float  # share of query words found in the best article
    n_tokens: int
    idf_top_coverage: float = 0.0  # the same, weighted by the words' rarity across articles
    dense_z: float = 0.0  # how far the best dense score stands out of the top ten (in their standard deviations)
    english: bool = False  # an English query: its scores run lower (the model and the KB are mainly Chinese)
    # The English model's best similarity, for English queries when one is configured; None = not measured, which
    # the refusal model reads as neutral (the mean of its fit data), so it also serves indexes without that model.
    english_top: float | None = None
    mixed: bool = False  # Chinese with English words in it ("residence permit 怎么办"): both models read it worse

    def select(self, features: tuple[str, ...]) -> np.ndarray:
        """The named features in that order (a calibration fitted on fewer features still applies)."""
        v = self.vector()
        return np.array([v[FEATURES.index(f)] for f in features], dtype=np.float64)

    def as_dict(self) -> dict[str, float | None]:
        """The features by name (what the refusal model weighs), for logs, the API and other deciders."""
        return {name: None if math.isnan(v) else round(float(v), 4)
                for name, v in zip(FEATURES, self.vector(), strict=True)}

    def vector(self) -> np.ndarray:
        return np.array(
            [
                self.dense_top,
                self.dense_top - self.dense_second,
                math.log1p(self.bm25_top),
                (self.bm25_top - self.bm25_second) / self.bm25_top if self.bm25_top > 0 else 0.0,
                1.0 if self.agree else 0.0,
                self.fused_top_dense,
                self.coverage,
                self.top_coverage,
                self.idf_top_coverage,
                self.dense_z,
                1.0 if self.english else 0.0,
                math.nan if self.english_top is None else self.english_top,
                1.0 if self.mixed else 0.0,
            ],
            dtype=np.float64,
        )


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
        x = (signals.select(self.features) - np.asarray(self.mean)) / np.asarray(self.std)
        x = np.nan_to_num(x, nan=0.0)  # a signal that was not measured weighs as the average
        z = float(x @ np.asarray(self.weights) + self.bias)
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

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
    xs = np.nan_to_num((x - mean) / std, nan=0.0)  # not measured (e.g. english_top of a Chinese query) = neutral
    n, d = xs.shape
    sw = np.ones(n) if weights is None else weights.astype(np.float64)
    pos = float((sw * (y == 1)).sum())
    neg = float((sw * (y == 0)).sum())
    # Why balanced: sample questions make positives far more numerous than out-of-scope examples.
    sw = np.where(y == 1, sw * n / (2 * max(pos, 1e-9)), sw * n / (2 * max(neg, 1e-9)))
    w = np.zeros(d)
    b = 0.0
    for _ in range(iters):
        z = xs @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        g = sw * (p - y)
        w -= lr * (xs.T @ g / n + l2 * w / n)
        b -= lr * float(g.mean())
    return mean, std, w, b


def predict(x: np.ndarray, mean: np.ndarray, std: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-(np.nan_to_num((x - mean) / std, nan=0.0) @ w + b))))
