"""Train the Rasa model only when its inputs changed (gateway environment; runs Rasa as a subprocess).

The model's file name is a fingerprint of everything training reads (bot/config.yml, bot/jieba/*,
training_data/**), so "is the model current?" is "does the file exist?". `python -m bot.training` prints the model
path (used by `make train`, `make run` and the test fixture).

Rasa 3.6 keeps its training cache in `.rasa/cache` under the working directory unless RASA_CACHE_DIRECTORY says
otherwise; we point it into the models directory so that nothing is written inside the repository.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import structlog

logger = structlog.get_logger(__name__)

CONFIG_FILE = Path("bot/config.yml")
JIEBA_DIR = Path("bot/jieba")
TRAINING_DATA_DIR = Path("training_data")
DOMAIN_DIR = TRAINING_DATA_DIR / "domain"
DATA_DIR = TRAINING_DATA_DIR / "data"
FINGERPRINT_CHARS = 16
PROGRESS_EVERY_S = 5.0


class TrainingError(RuntimeError):
    """Rasa training failed (the message carries the exit code and the tail of Rasa's output)."""


def training_inputs(root: Path) -> list[Path]:
    """Every file training reads, relative to `root`, sorted by path."""
    files: list[Path] = [CONFIG_FILE]
    for directory in (JIEBA_DIR, TRAINING_DATA_DIR):
        base = root / directory
        if base.is_dir():
            files.extend(
                path.relative_to(root) for path in base.rglob("*") if path.is_file() and "__pycache__" not in path.parts
            )
    return sorted(set(files), key=lambda path: path.as_posix())


def training_fingerprint(root: Path) -> str:
    """sha256 over the paths and contents of the training inputs (so a rename also counts as a change)."""
    digest = hashlib.sha256()
    for relative in training_inputs(root):
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update((root / relative).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def model_path(root: Path, models_dir: Path) -> Path:
    """Where the model for the current training inputs lives (it may not exist yet)."""
    return models_dir / f"{training_fingerprint(root)[:FINGERPRINT_CHARS]}.tar.gz"


def ensure_model(root: Path, models_dir: Path, rasa_bin: Path, cache_dir: Path | None = None) -> Path:
    """The trained model for the current inputs, training it first when it is missing.

    Trains into a temporary directory and renames into place, so a crash or a concurrent run never leaves a
    half-written model under the final name.
    """
    root = root.resolve()
    models_dir = models_dir.resolve()
    target = model_path(root, models_dir)
    if target.exists():
        logger.info("rasa_model.current", model=str(target))
        return target
    if not rasa_bin.exists():
        raise TrainingError(f"Rasa is not installed at {rasa_bin} (build the Rasa environment first)")

    models_dir.mkdir(parents=True, exist_ok=True)
    name = target.name.removesuffix(".tar.gz")
    cache = (cache_dir or models_dir / "cache").resolve()
    with tempfile.TemporaryDirectory(prefix=f"train-{name}-", dir=models_dir) as out_dir:
        command = [
            str(rasa_bin), "train",
            "--config", str(CONFIG_FILE),
            "--domain", str(DOMAIN_DIR),
            "--data", str(DATA_DIR),
            "--out", out_dir,
            "--fixed-model-name", name,
        ]  # fmt: skip
        env = {
            **os.environ,
            "RASA_CACHE_DIRECTORY": str(cache),
            "RASA_TELEMETRY_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }
        logger.info("rasa_train.start", model=str(target), cache=str(cache))
        started = time.monotonic()
        tail = _run_streaming(command, cwd=root, env=env)
        elapsed = time.monotonic() - started
        trained = Path(out_dir) / target.name
        if tail.returncode != 0 or not trained.exists():
            logger.error("rasa_train.failed", returncode=tail.returncode, seconds=round(elapsed, 1))
            raise TrainingError(
                f"rasa train failed (exit code {tail.returncode}) after {elapsed:.0f} s; last output:\n"
                + "\n".join(tail.lines)
            )
        os.replace(trained, target)
    logger.info(
        "rasa_train.done",
        model=str(target),
        seconds=round(elapsed, 1),
        megabytes=round(target.stat().st_size / 1e6, 1),
    )
    return target


class _Outcome:
    def __init__(self, returncode: int, lines: list[str]) -> None:
        self.returncode = returncode
        self.lines = lines


def _run_streaming(command: list[str], cwd: Path, env: dict[str, str]) -> _Outcome:
    """Runs Rasa, logging its output line by line (progress bars at most every few seconds)."""
    last_lines: list[str] = []
    last_progress = 0.0
    started = time.monotonic()
    # Text mode splits on \r too, so tqdm's in-place progress bars arrive as separate lines.
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as process:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.rstrip()
            if not line:
                continue
            last_lines = (last_lines + [line])[-30:]
            now = time.monotonic()
            if "it/s" in line or "s/it" in line:  # a progress bar update
                if now - last_progress < PROGRESS_EVERY_S:
                    continue
                last_progress = now
                logger.info("rasa_train.progress", elapsed_s=round(now - started), line=line[:200])
            else:
                logger.info("rasa_train.output", line=line[:500])
        returncode = process.wait()
    return _Outcome(returncode, last_lines)


def main(argv: list[str] | None = None) -> int:
    """CLI: train if needed and print the model path on stdout (logs go to stderr)."""
    import argparse

    root_default = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(prog="python -m bot.training", description=__doc__)
    parser.add_argument("--root", type=Path, default=root_default, help="repository root")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("RASA_MODELS_DIR", root_default / "models")),
        help="where models are kept (env RASA_MODELS_DIR, default models/)",
    )
    parser.add_argument(
        "--rasa-bin",
        type=Path,
        default=Path(os.environ.get("RASA_BIN", root_default / ".venv-rasa" / "bin" / "rasa")),
        help="the rasa executable (env RASA_BIN, default .venv-rasa/bin/rasa)",
    )
    parser.add_argument("--fingerprint", action="store_true", help="only print the training fingerprint")
    args = parser.parse_args(argv)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    if args.fingerprint:
        print(training_fingerprint(args.root))
        return 0
    try:
        path = ensure_model(args.root, args.models_dir, args.rasa_bin)
    except TrainingError as error:
        print(str(error), file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
