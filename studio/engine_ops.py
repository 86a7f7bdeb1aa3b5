"""Training, evaluating and activating models for the studio, against the real engine.

- Train: `rasa train` of the studio's project in the engine's environment (like `bot.training`), in the
  background, one at a time across workers (a coordination lock plus the job table), its log and progress kept on
  the job row so every worker's page can poll it.
- Evaluate: the new model (loaded once by `studio/engine/predict.py` in the engine's environment) and the live one
  (the running server's `/model/parse`) on the same examples (`studio.evaluation`).
- Activate / roll back: the engine's model-replace API (`PUT /model`, the server runs with `--enable-api`). Rasa
  swaps the agent only after the new one has loaded, so the gateway never talks to a half-loaded model; the studio
  then checks the server reports the new file and parses a message with it before it records the model as live.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog
from sqlalchemy import select

from bot.server import PROJECT_ROOT, RASA_BIN
from bot.training import CONFIG_FILE
from gateway.clock import utc_now
from gateway.coordination import Coordination
from gateway.storage import Database
from studio import evaluation
from studio.models import Activation, TrainingJob
from studio.project import TrainingProject, engine_environment, validate_with_rasa
from studio.review import ReviewQueue

log = structlog.get_logger(__name__)

TRAIN_LOCK = "studio:train"
RUNNING_STATES = ("queued", "validating", "training", "evaluating")
LOG_LINES = 200
FLUSH_EVERY_S = 1.5
_EPOCHS = re.compile(r"Epochs:\s+(\d+)%")
PREDICT_SCRIPT = Path(__file__).resolve().parent / "engine" / "predict.py"


class StudioBusy(Exception):
    """A model is already being trained."""


class ActivationFailed(Exception):
    """The engine did not take the model; the previous one is still live."""


@dataclass
class EngineSettings:
    rasa_url: str
    models_dir: Path  # where studio-trained models go (the engine must be able to read them by path)
    cache_dir: Path  # Rasa's training cache, shared with `make train` so unchanged parts are not retrained
    base_models_dir: Path  # where the model the engine started with lives (RASA_MODELS_DIR)
    rasa_bin: Path = RASA_BIN
    cwd: Path = PROJECT_ROOT  # bot/config.yml names bot/jieba relative to it
    rasa_token: str = ""  # the engine's API token (--auth-token), sent as Rasa's `token` parameter

    @property
    def api_params(self) -> dict[str, str]:
        return {"token": self.rasa_token} if self.rasa_token else {}


class ModelEngine:
    def __init__(self, settings: EngineSettings, db: Database, coordination: Coordination, http: httpx.AsyncClient,
                 project: TrainingProject, review: ReviewQueue) -> None:
        self.settings = settings
        self.db = db
        self.coordination = coordination
        self.http = http
        self.project = project
        self.review = review

    # ---- training ---------------------------------------------------------------------------------------------------

    async def start_training(self, by: str) -> tuple[int, AsyncExitStack]:
        """Create a job and take the training lock; the caller runs `run_job` with the returned stack."""
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(self.coordination.lock(TRAIN_LOCK, hold_seconds=3600, wait_seconds=0.5))
        except Exception as exc:
            await stack.aclose()
            raise StudioBusy("a model is being trained already") from exc
        try:
            async with self.db.sessions() as session, session.begin():
                running = (
                    await session.execute(select(TrainingJob.id).where(TrainingJob.state.in_(RUNNING_STATES)))
                ).first()
                if running is not None:
                    stale = await session.get(TrainingJob, running.id)
                    assert stale is not None
                    # We hold the lock, so no worker is running it: it was left by a crash.
                    stale.state, stale.error = "failed", "interrupted (the gateway stopped)"
                    stale.finished_at = utc_now()
                job = TrainingJob(state="queued", progress=0.0, log="", started_by=by)
                session.add(job)
                await session.flush()
                return job.id, stack
        except BaseException:
            await stack.aclose()
            raise

    async def run_job(self, job_id: int, stack: AsyncExitStack) -> None:
        """Validate, train, evaluate; the job row says how it went. Releases the training lock at the end."""
        async with stack:
            lines: list[str] = []
            predictor: asyncio.subprocess.Process | None = None
            try:
                await self._update(job_id, state="validating", progress=0.02)
                problems = await asyncio.to_thread(self.project.check)
                if not problems:  # Rasa's own validation only when the quick checks pass (it takes ~20 s)
                    passed, rasa_lines = await validate_with_rasa(
                        self.project.root, self.settings.rasa_bin, self.settings.cwd / CONFIG_FILE, self.settings.cwd
                    )
                    problems = [] if passed else rasa_lines
                if problems:
                    reasons = "\n".join(problems)
                    raise RuntimeError(f"the training data did not pass validation:\n{reasons}")
                await self._update(job_id, state="training", progress=0.05, log="validation passed\n")
                predictor = await self._start_predictor()
                model = await self._train(job_id, lines)
                await self._update(job_id, state="evaluating", progress=0.92, model_path=str(model))
                report = await self.evaluate(model, predictor)
                await self._update(job_id, state="ready", progress=1.0, evaluation=report, finished_at=utc_now())
                log.info("studio.trained", job=job_id, model=str(model), live=report["live_accuracy"],
                         new=report["new_accuracy"])
            except Exception as exc:  # noqa: BLE001 - every failure ends up on the job for staff to read
                log.warning("studio.training_failed", job=job_id, error=str(exc)[:500])
                await self._update(job_id, state="failed", error=str(exc)[-4000:], finished_at=utc_now())
            finally:
                if predictor is not None and predictor.returncode is None:
                    predictor.kill()
                    await predictor.wait()

    async def _train(self, job_id: int, lines: list[str]) -> Path:
        if not self.settings.rasa_bin.exists():
            raise RuntimeError(f"the engine is not installed at {self.settings.rasa_bin}")
        self.settings.models_dir.mkdir(parents=True, exist_ok=True)
        name = f"studio-{job_id}-{training_fingerprint_of(self.project.root)}"
        command = [
            str(self.settings.rasa_bin), "train",
            "--config", str(self.settings.cwd / CONFIG_FILE),
            "--domain", str(self.project.domain_dir), "--data", str(self.project.data_dir),
            "--out", str(self.settings.models_dir), "--fixed-model-name", name,
        ]  # fmt: skip
        env = {**engine_environment(), "RASA_CACHE_DIRECTORY": str(self.settings.cache_dir), "PYTHONUNBUFFERED": "1"}
        process = await asyncio.create_subprocess_exec(
            *command, cwd=str(self.settings.cwd), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert process.stdout is not None
        bars_done, last_flush, progress = 0, 0.0, 0.05
        last_percent = 0
        buffer = b""
        while True:
            chunk = await process.stdout.read(4096)
            if not chunk:
                break
            buffer += chunk
            # tqdm redraws with \r: each redraw is a line of its own here.
            *complete, buffer = re.split(rb"[\r\n]", buffer)
            for raw in complete:
                line = raw.decode(errors="replace").strip()
                if not line:
                    continue
                match = _EPOCHS.search(line)
                if match:
                    percent = int(match.group(1))
                    if percent < last_percent:
                        bars_done += 1  # a new component's epochs started (DIET, then TED)
                    last_percent = percent
                    # DIET's epochs, then TED's (often restored from the cache when only NLU changed).
                    progress = 0.05 + 0.55 * percent / 100 if bars_done == 0 else 0.6 + 0.3 * percent / 100
                    if lines and _EPOCHS.search(lines[-1]):
                        lines[-1] = line[:300]
                        continue
                lines.append(line[:300])
            del lines[:-LOG_LINES]
            now = time.monotonic()
            if now - last_flush > FLUSH_EVERY_S:
                last_flush = now
                await self._update(job_id, progress=progress, log="\n".join(lines))
        code = await process.wait()
        await self._update(job_id, log="\n".join(lines))
        model = self.settings.models_dir / f"{name}.tar.gz"
        if code != 0 or not model.exists():
            raise RuntimeError(f"rasa train failed (exit code {code}); last output:\n" + "\n".join(lines[-15:]))
        return model

    # ---- evaluation -------------------------------------------------------------------------------------------------

    async def evaluate(self, model: Path, predictor: asyncio.subprocess.Process | None = None) -> dict[str, Any]:
        training = [(text, intent.name) for intent in self.project.intents()
                    for examples in intent.examples.values() for text in examples]  # fmt: skip
        examples = evaluation.evaluation_set(training, await self.review.labelled())
        texts = [e.text for e in examples]
        started = time.monotonic()
        live, new = await asyncio.gather(self.parse_live(texts), self.parse_with_model(model, texts, predictor))
        report = evaluation.compare(examples, live, new)
        report["seconds"] = round(time.monotonic() - started, 1)
        return report

    async def parse_live(self, texts: list[str]) -> list[dict[str, Any]]:
        """Classify with the model the engine is serving now."""
        limit = asyncio.Semaphore(8)

        async def one(text: str) -> dict[str, Any]:
            async with limit:
                response = await self.http.post(f"{self.settings.rasa_url}/model/parse", json={"text": text},
                                                 params=self.settings.api_params, timeout=30)
                response.raise_for_status()
                intent = response.json().get("intent") or {}
                return {"intent": intent.get("name"), "confidence": intent.get("confidence")}

        return list(await asyncio.gather(*(one(t) for t in texts)))

    async def _start_predictor(self) -> asyncio.subprocess.Process:
        """The engine-side classifier process; it imports Rasa and then waits for its request on stdin."""
        python = self.settings.rasa_bin.parent / "python"
        return await asyncio.create_subprocess_exec(
            str(python), str(PREDICT_SCRIPT), cwd=str(self.settings.cwd), env=engine_environment(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def parse_with_model(self, model: Path, texts: list[str],
                               process: asyncio.subprocess.Process | None = None) -> list[dict[str, Any]]:
        """Classify with a model file, loaded once in a short-lived process in the engine's environment."""
        process = process or await self._start_predictor()
        out, err = await process.communicate(json.dumps({"model": str(model), "texts": texts}).encode())
        if process.returncode != 0:
            raise RuntimeError("evaluating the new model failed: " + err.decode(errors="replace")[-1500:])
        result: list[dict[str, Any]] = json.loads(out.decode().strip().splitlines()[-1])
        return result

    # ---- activation -------------------------------------------------------------------------------------------------

    async def live_model(self) -> str | None:
        """The path of the model the engine serves (the newest activation, else the file it started with)."""
        async with self.db.sessions() as session:
            latest = (
                await session.execute(select(Activation).order_by(Activation.id.desc()).limit(1))
            ).scalar_one_or_none()
        if latest is not None:
            return latest.model_path
        try:
            status = (await self.http.get(f"{self.settings.rasa_url}/status", params=self.settings.api_params,
                                           timeout=5)).json()
        except (httpx.HTTPError, ValueError):
            return None
        name = str(status.get("model_file") or "")
        return str(self.settings.base_models_dir / Path(name).name) if name else None

    async def activate(self, model_path: str, by: str, job_id: int | None = None, kind: str = "activate"
                       ) -> dict[str, Any]:
        """Put a model live; returns the activation. The previous model stays live if anything fails."""
        path = Path(model_path)
        if not await asyncio.to_thread(path.exists):
            raise ActivationFailed(f"the model file {path.name} is gone")
        previous = await self.live_model()
        async with self.coordination.lock("studio:activate", hold_seconds=600, wait_seconds=5):
            try:
                response = await self.http.put(f"{self.settings.rasa_url}/model", json={"model_file": str(path)},
                                               params=self.settings.api_params, timeout=600)
            except httpx.HTTPError as exc:
                raise ActivationFailed(f"the engine could not be reached: {exc}") from exc
            if response.status_code != 204:
                raise ActivationFailed(f"the engine refused the model ({response.status_code}): {response.text[:300]}")
            await self._verify_serving(path)
            async with self.db.sessions() as session, session.begin():
                row = Activation(model_path=str(path), previous_model_path=previous, job_id=job_id, kind=kind,
                                 activated_by=by)
                session.add(row)
                await session.flush()
                result = {"model": path.name, "previous": Path(previous).name if previous else None, "kind": kind,
                          "activated_at": row.activated_at.isoformat()}
        log.info("studio.model_live", model=path.name, previous=result["previous"], kind=kind, by=by)
        return result

    async def rollback(self, by: str) -> dict[str, Any]:
        """Back to the model that was live before the current one."""
        async with self.db.sessions() as session:
            latest = (
                await session.execute(select(Activation).order_by(Activation.id.desc()).limit(1))
            ).scalar_one_or_none()
        if latest is None or not latest.previous_model_path:
            raise ActivationFailed("there is no earlier model to go back to")
        return await self.activate(latest.previous_model_path, by, kind="rollback")

    async def _verify_serving(self, path: Path) -> None:
        status = (await self.http.get(f"{self.settings.rasa_url}/status", params=self.settings.api_params,
                                  timeout=10)).json()
        if Path(str(status.get("model_file") or "")).name != path.name:
            raise ActivationFailed(f"the engine reports {status.get('model_file')!r}, not {path.name}")
        parsed = await self.http.post(f"{self.settings.rasa_url}/model/parse", json={"text": "你好"},
                                     params=self.settings.api_params, timeout=30)
        if parsed.status_code != 200 or not (parsed.json().get("intent") or {}).get("name"):
            raise ActivationFailed("the new model did not classify a test message")

    # ---- reading ----------------------------------------------------------------------------------------------------

    async def jobs(self, limit: int = 20) -> list[TrainingJob]:
        async with self.db.sessions() as session:
            rows = await session.execute(select(TrainingJob).order_by(TrainingJob.id.desc()).limit(limit))
            return list(rows.scalars())

    async def job(self, job_id: int) -> TrainingJob | None:
        async with self.db.sessions() as session:
            return await session.get(TrainingJob, job_id)

    async def activations(self, limit: int = 20) -> list[Activation]:
        async with self.db.sessions() as session:
            rows = await session.execute(select(Activation).order_by(Activation.id.desc()).limit(limit))
            return list(rows.scalars())

    async def _update(self, job_id: int, **values: Any) -> None:
        async with self.db.sessions() as session, session.begin():
            job = await session.get(TrainingJob, job_id)
            if job is not None:
                for key, value in values.items():
                    setattr(job, key, value)


def training_fingerprint_of(project_root: Path) -> str:
    """A short hash of the project's training data (names the model file, so a developer can match it)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in project_root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(project_root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]



def default_paths(data_dir: Path, rasa_models_dir: Path) -> tuple[Path, Path]:
    """(studio models folder, Rasa's training cache)."""
    return Path(os.path.abspath(data_dir / "studio" / "models")), Path(os.path.abspath(rasa_models_dir / "cache"))
