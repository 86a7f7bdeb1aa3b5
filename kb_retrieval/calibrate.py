"""Fit the "answerable" model and write kb_retrieval/calibration.json.

    python -m kb_retrieval.calibrate [--kb /work/shared/kb/articles.jsonl] [--index-dir DIR]

Data (none of it from the dev set): the written queries of eval/tune.jsonl (in-scope = answerable) and the
out-of-scope sets of eval/tune.jsonl and eval/oos_calibration.jsonl, plus every article's sample questions as
extra positives, each searched with its own passage hidden (otherwise it would match itself). Sample questions get
a tenth of the weight of written queries: they are longer and cleaner than what citizens type, and at full weight
they taught the model that long queries are answerable. The threshold is the highest probability that still
answers 98 % of the written in-scope queries. A 5-fold cross-validation over the written queries is printed as
the honest estimate (the fitted numbers are optimistic).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from kb_retrieval.answerable import FEATURES, Calibration, fit_logistic, predict
from kb_retrieval.articles import load_articles
from kb_retrieval.config import DEFAULT_CALIBRATION, PACKAGE_DIR, KBConfig
from kb_retrieval.evaluate import load_queries
from kb_retrieval.index import build_knowledge_base
from kb_retrieval.text import normalize

EVAL_DIR = PACKAGE_DIR / "eval"
MAX_ANSWERABLE_REFUSED = 0.02
SAMPLE_QUESTION_WEIGHT = 0.1


def _fit(
    written: np.ndarray, labels: np.ndarray, samples: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    x = np.vstack([written, samples])
    y = np.concatenate([labels, np.ones(len(samples))])
    w = np.concatenate([np.ones(len(written)), np.full(len(samples), SAMPLE_QUESTION_WEIGHT)])
    mean, std, coef, bias = fit_logistic(x, y, w)
    pos = np.sort(predict(written[labels == 1], mean, std, coef, bias))
    threshold = float(pos[int(np.floor(MAX_ANSWERABLE_REFUSED * len(pos)))]) - 1e-6
    return mean, std, coef, bias, threshold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kb", type=Path, default=Path("/work/shared/kb/articles.jsonl"))
    ap.add_argument("--index-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=DEFAULT_CALIBRATION)
    args = ap.parse_args()
    articles = load_articles(args.kb)
    kb = build_knowledge_base(KBConfig.from_env(index_dir=args.index_dir, calibration_path=None), articles)

    queries = load_queries(EVAL_DIR / "tune.jsonl") + load_queries(EVAL_DIR / "oos_calibration.jsonl")
    written = np.vstack([kb.rank(q.q).signals.vector() for q in queries])
    labels = np.array([0.0 if q.expected is None else 1.0 for q in queries])
    samples = np.vstack(
        [
            kb.rank(question, exclude_passage=(a.id, normalize(question))).signals.vector()
            for a in articles
            for question in a.questions
        ]
    )

    folds = np.random.default_rng(0).integers(0, 5, len(written))
    oos_ref: list[bool] = []
    ans_ref: list[bool] = []
    for f in range(5):
        tr, te = folds != f, folds == f
        mean, std, coef, bias, thr = _fit(written[tr], labels[tr], samples)
        p = predict(written[te], mean, std, coef, bias)
        oos_ref += list(p[labels[te] == 0] < thr)
        ans_ref += list(p[labels[te] == 1] < thr)
    print(f"5-fold CV over written queries: out-of-scope refused {np.mean(oos_ref):.3f}, "
          f"answerable refused {np.mean(ans_ref):.3f}")

    mean, std, coef, bias, threshold = _fit(written, labels, samples)
    p = predict(written, mean, std, coef, bias)
    print(f"examples: {int(labels.sum())} written answerable, {int((labels == 0).sum())} out of scope, "
          f"{len(samples)} sample questions")
    print("weights:", {f: round(float(v), 3) for f, v in zip(FEATURES, coef, strict=True)}, "bias", round(bias, 3))
    oos_refused = float((p[labels == 0] < threshold).mean())
    ans_refused = float((p[labels == 1] < threshold).mean())
    print(f"threshold {threshold:.4f} (fit data): out-of-scope refused {oos_refused:.3f}, "
          f"answerable refused {ans_refused:.3f}")
    Calibration(
        features=FEATURES,
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        weights=tuple(float(v) for v in coef),
        bias=float(bias),
        threshold=threshold,
        model_fingerprint=kb.embedder.fingerprint,
        note="python -m kb_retrieval.calibrate on the shared test KB: tune.jsonl, oos_calibration.jsonl, samples",
    ).save(args.out)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
