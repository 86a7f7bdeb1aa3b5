"""The fast path for one query: the sentence model exported to ONNX, weights in int8, run by ONNX Runtime.

Why: encoding the query is most of a search (the index lookups take ~1 ms). Measured with m3e-small on the dev
queries, one thread: torch fp32 ~21 ms of CPU, torch dynamic int8 ~7.4 ms (cosine to fp32 ≥ 0.981), ONNX Runtime
int8 per channel ~2.3 ms (cosine ≥ 0.991). Passages keep the full-precision torch model.

The exported file is a cache, named by the model's fingerprint, written once (atomically, so several workers may
race) into KBConfig.query_encoder_dir (models/query-encoder/), or a temporary directory when that is not writable.
Only models ONNX can reproduce exactly are exported: a BERT-like transformer followed by mean pooling and
(optionally) normalisation; anything else returns None and the caller keeps torch.

Every export, and every load of an earlier one, is checked against the torch model on a few probe sentences
(`MIN_COSINE`): a quantizer that goes wrong (ONNX Runtime 1.32's per-channel int8 turned m3e-small's query vectors
to cosine 0.73 of the real ones, and every search into "not sure") falls back to per-tensor weights, then to torch.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import structlog

log = structlog.get_logger(__name__)

EXPORT_VERSION = 2  # 2: checked against torch after export (version 1 files may be unfaithful)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# Probe sentences of the kinds queries come in (short, long, Chinese, English, mixed) and the cosine to the torch
# model each must reach for the int8 copy to be used.
PROBES = (
    "示例 example",
    "身份证丢了怎么补办",
    "公交卡丢了怎么挂失，卡里的余额还能退吗？我上个月刚充了两百元",
    "How do I renew my residence permit before it expires?",
    "my 社保卡 was stolen, what do I do",
)
MIN_COSINE = 0.98


class Unfaithful(Exception):
    """The int8 copy does not reproduce the model closely enough."""


def _exportable(model: Any) -> bool:
    modules = [type(m).__name__ for m in model]
    if modules[:2] != ["Transformer", "Pooling"] or any(m not in ("Normalize",) for m in modules[2:]):
        return False
    pooling = model[1].get_config_dict()
    return pooling.get("pooling_mode", "mean") == "mean" or bool(pooling.get("pooling_mode_mean_tokens"))


def _export(model: Any, target: Path) -> None:
    """Transformer + mean pooling + L2 normalisation → ONNX (fp32) → dynamic int8 at `target`."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    bert = model[0].auto_model.eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    sample = model.tokenizer(["示例 example"], return_tensors="pt")
    if "token_type_ids" not in sample:
        sample["token_type_ids"] = torch.zeros_like(sample["input_ids"])
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(
                Pooled(), tuple(sample[k] for k in _INPUTS), str(fp32), input_names=list(_INPUTS),
                output_names=["embedding"], dynamic_axes={k: {0: "batch", 1: "tokens"} for k in _INPUTS},
                opset_version=17, dynamo=False,
            )
        # Why per channel first: with one scale per weight matrix, all-MiniLM-L6-v2's query vectors drifted to
        # cosine 0.92–0.97 of fp32; per output channel they stay at ≥ 0.986 (m3e-small ≥ 0.991) for the same speed.
        # Whichever the probes accept first is kept.
        worst = 0.0
        for per_channel in (True, False):
            int8 = Path(tmp) / f"int8-{per_channel}.onnx"
            logging.disable(logging.WARNING)  # its root-logger advice to pre-process the graph, at every export
            try:
                quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=per_channel)
            finally:
                logging.disable(logging.NOTSET)
            worst = fidelity(OnnxQueryEncoder(int8, model.tokenizer, int(model.max_seq_length)), model)
            if worst >= MIN_COSINE:
                os.replace(int8, target)  # atomic: a racing worker sees the whole file or none
                return
            log.warning("kb.query_encoder_unfaithful", per_channel=per_channel, cosine=round(worst, 4))
        raise Unfaithful(f"int8 copies reach cosine {worst:.3f} of the model (need {MIN_COSINE})")


def fidelity(encoder: OnnxQueryEncoder, model: Any) -> float:
    """The lowest cosine between the encoder's and the torch model's vectors over the probe sentences."""
    reference = model.encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True)
    return min(float(np.dot(encoder.encode(text), ref)) for text, ref in zip(PROBES, reference, strict=True))


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK)


class OnnxQueryEncoder:
    """Encodes one text at a time with an int8 ONNX copy of a sentence-transformers model."""

    def __init__(self, path: Path, tokenizer: Any, max_tokens: int, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = tokenizer
        self._max_tokens = max_tokens

    def encode(self, text: str) -> np.ndarray:
        feed = self._tokenizer([text], return_tensors="np", truncation=True, max_length=self._max_tokens)
        ids = np.asarray(feed["input_ids"], dtype=np.int64)
        inputs = {
            "input_ids": ids,
            "attention_mask": np.asarray(feed["attention_mask"], dtype=np.int64),
            "token_type_ids": np.asarray(feed.get("token_type_ids", np.zeros_like(ids)), dtype=np.int64),
        }
        return np.ascontiguousarray(self._session.run(None, inputs)[0][0], dtype=np.float32)


def load_or_export(model: Any, fingerprint: str, cache_dir: Path, threads: int = 1) -> OnnxQueryEncoder | None:
    """The int8 ONNX query encoder for this model, exported into cache_dir on first use; None when the model's
    shape cannot be exported faithfully or ONNX Runtime is unavailable (the caller falls back to torch)."""
    if not _exportable(model):
        log.info("kb.query_encoder_torch", reason="model is not transformer + mean pooling")
        return None
    target = cache_dir / f"{fingerprint}-v{EXPORT_VERSION}.int8.onnx"
    if not target.is_file() and not _writable(cache_dir):
        target = Path(tempfile.gettempdir()) / "kb-query-encoder" / target.name
    try:
        if target.is_file():
            try:
                encoder = OnnxQueryEncoder(target, model.tokenizer, int(model.max_seq_length), threads)
                if fidelity(encoder, model) >= MIN_COSINE:
                    return encoder
                reason = "no longer reproduces the model"  # ONNX Runtime changed since it was written
            except Exception as exc:  # noqa: BLE001 - a truncated or foreign file is made again
                reason = type(exc).__name__
            log.warning("kb.query_encoder_stale", path=str(target), reason=reason)
            target.unlink(missing_ok=True)
        # An export these versions cannot make faithful is not tried again at every start (seconds of CPU each).
        refused = target.with_name(target.name.replace(".int8.onnx", ".unfaithful"))
        if refused.is_file() and refused.read_text(encoding="utf-8") == _toolchain():
            log.info("kb.query_encoder_torch", reason="no faithful int8 copy with these versions")
            return None
        started = time.perf_counter()
        try:
            _export(model, target)
        except Unfaithful:
            refused.write_text(_toolchain(), encoding="utf-8")
            raise
        log.info("kb.query_encoder_exported", path=str(target), seconds=round(time.perf_counter() - started, 1))
        return OnnxQueryEncoder(target, model.tokenizer, int(model.max_seq_length), threads)
    except Exception as exc:  # noqa: BLE001 - any export/runtime failure leaves the (slower) torch path working
        log.warning("kb.query_encoder_torch", reason=f"{type(exc).__name__}: {exc}")
        return None


def _toolchain() -> str:
    """The versions an export's faithfulness depends on."""
    import onnx
    import onnxruntime
    import torch

    return f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}"
