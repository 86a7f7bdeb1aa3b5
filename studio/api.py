"""The studio's JSON API under /api/studio: intents and examples, responses, validation, the review queue, training
jobs with their evaluation, activation and rollback. Every route needs a content editor (`studio.access.editor`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from bot.training import CONFIG_FILE
from gateway.api_types import RowId
from gateway.privacy import mask_personal_data
from gateway.services import Services, services_of
from studio.access import Principal, editor
from studio.engine_ops import ActivationFailed, StudioBusy
from studio.models import Activation, TrainingJob
from studio.project import validate_with_rasa
from studio.service import Studio, studio_of

QUEUE_KEY = r"^[mf]:\d{1,12}$"

router = APIRouter(prefix="/api/studio", tags=["studio"])


# ---- bodies -------------------------------------------------------------------------------------------------------


class IntentOut(BaseModel):
    name: str
    examples: dict[str, list[str]] = Field(description="zh and en examples, in file order")


class IntentIn(BaseModel):
    name: str = Field(min_length=2, max_length=63, pattern=r"^[a-z][a-z0-9_]+$")


class ExampleIn(BaseModel):
    text: str = Field(min_length=1, max_length=300)


class ExampleEdit(BaseModel):
    old: str = Field(min_length=1, max_length=300)
    new: str = Field(min_length=1, max_length=300)


class ExampleMove(BaseModel):
    text: str = Field(min_length=1, max_length=300)
    to: str = Field(min_length=2, max_length=63)


class ResponseOut(BaseModel):
    name: str
    zh: str
    en: str
    extra: list[str] = Field(description="Other parts of the variations (buttons…), kept as they are")


class ResponseIn(BaseModel):
    zh: str = Field(min_length=1, max_length=2000)
    en: str = Field(min_length=1, max_length=4000)


class Saved(BaseModel):
    saved: str = Field(description="The file written, relative to the project folder")


class ValidationOut(BaseModel):
    passed: bool
    problems: list[str]


class QueueOut(BaseModel):
    waiting: int = Field(description="Unsure messages not yet handled")
    groups: list[dict[str, Any]] = Field(description="Similar messages grouped; most frequent (or newest) first")


class QueueKeys(BaseModel):
    keys: list[str] = Field(min_length=1, max_length=5000)

    def checked(self) -> list[str]:
        import re

        bad = [k for k in self.keys if not re.match(QUEUE_KEY, k)]
        if bad:
            raise HTTPException(422, f"not queue keys: {bad[:3]}")
        return self.keys


class QueueToExample(QueueKeys):
    text: str = Field(min_length=1, max_length=300, description="The example as staff want it (masked again)")
    intent: str = Field(min_length=2, max_length=63)


class QueueToArticle(QueueKeys):
    text: str = Field(min_length=1, max_length=300)
    article_id: str | None = Field(None, max_length=64, description="The article staff created from it")


class JobOut(BaseModel):
    id: int
    state: Literal["queued", "validating", "training", "evaluating", "ready", "failed"]
    progress: float
    log: str
    model: str | None
    evaluation: dict[str, Any] | None
    error: str | None
    started_by: str | None
    created_at: datetime
    finished_at: datetime | None
    live: bool = False

    @classmethod
    def of(cls, job: TrainingJob, live_model: str | None) -> JobOut:
        return cls(id=job.id, state=job.state, progress=round(job.progress, 3), log=job.log,  # type: ignore[arg-type]
                   model=Path(job.model_path).name if job.model_path else None, evaluation=job.evaluation,
                   error=job.error, started_by=job.started_by, created_at=job.created_at,
                   finished_at=job.finished_at, live=bool(job.model_path and job.model_path == live_model))


class ActivationOut(BaseModel):
    model: str
    previous: str | None
    kind: str
    job_id: int | None
    activated_by: str | None
    activated_at: datetime

    @classmethod
    def of(cls, row: Activation) -> ActivationOut:
        return cls(model=Path(row.model_path).name,
                   previous=Path(row.previous_model_path).name if row.previous_model_path else None,
                   kind=row.kind, job_id=row.job_id, activated_by=row.activated_by, activated_at=row.activated_at)


class ModelsOut(BaseModel):
    live: str | None
    can_roll_back: bool
    activations: list[ActivationOut]


# ---- intents and responses ----------------------------------------------------------------------------------------


def _saved(studio: Studio, path: Path) -> Saved:
    try:
        return Saved(saved=path.relative_to(studio.project.root).as_posix())
    except ValueError:
        return Saved(saved=path.name)


@router.get("/intents", response_model=list[IntentOut], summary="Intents with their examples (zh, en)")
async def intents(_who: Principal = editor, studio: Studio = Depends(studio_of)) -> list[IntentOut]:
    return [IntentOut(name=i.name, examples=i.examples) for i in studio.project.intents()]


@router.post("/intents", response_model=Saved, status_code=201, summary="Add an intent")
async def add_intent(body: IntentIn, _who: Principal = editor, studio: Studio = Depends(studio_of)) -> Saved:
    return _saved(studio, await studio.edit(lambda: studio.project.add_intent(body.name)))


@router.post("/intents/{intent}/examples", response_model=Saved, status_code=201, summary="Add an example")
async def add_example(intent: str, body: ExampleIn, _who: Principal = editor,
                      studio: Studio = Depends(studio_of)) -> Saved:
    return _saved(studio, await studio.edit(lambda: studio.project.add_example(intent, body.text)))


@router.put("/intents/{intent}/examples", response_model=Saved, summary="Change an example")
async def edit_example(intent: str, body: ExampleEdit, _who: Principal = editor,
                       studio: Studio = Depends(studio_of)) -> Saved:
    return _saved(studio, await studio.edit(lambda: studio.project.edit_example(intent, body.old, body.new)))


@router.post("/intents/{intent}/examples/delete", response_model=Saved, summary="Delete an example")
async def delete_example(intent: str, body: ExampleIn, _who: Principal = editor,
                         studio: Studio = Depends(studio_of)) -> Saved:
    return _saved(studio, await studio.edit(lambda: studio.project.delete_example(intent, body.text)))


@router.post("/intents/{intent}/examples/move", response_model=Saved, summary="Move an example to another intent")
async def move_example(intent: str, body: ExampleMove, _who: Principal = editor,
                       studio: Studio = Depends(studio_of)) -> Saved:
    return _saved(studio, await studio.edit(lambda: studio.project.move_example(body.text, intent, body.to)))


@router.get("/responses", response_model=list[ResponseOut], summary="Responses with their zh and en texts")
async def responses(_who: Principal = editor, studio: Studio = Depends(studio_of)) -> list[ResponseOut]:
    return [ResponseOut(name=r.name, zh=r.zh, en=r.en, extra=r.extra) for r in studio.project.responses()]


@router.put("/responses/{name}", response_model=Saved, summary="Create a response or change its texts")
async def set_response(name: str, body: ResponseIn, _who: Principal = editor,
                       studio: Studio = Depends(studio_of)) -> Saved:
    return _saved(studio, await studio.edit(lambda: studio.project.set_response(name, body.zh, body.en)))


@router.post("/validate", response_model=ValidationOut,
             summary="Check the training data: quick checks, then Rasa's own `rasa data validate` (~20 s)")
async def validate(_who: Principal = editor, studio: Studio = Depends(studio_of)) -> ValidationOut:
    problems = studio.project.check()
    settings = studio.engine.settings
    passed, lines = await validate_with_rasa(studio.project.root, settings.rasa_bin, settings.cwd / CONFIG_FILE,
                                             settings.cwd)
    return ValidationOut(passed=passed and not problems, problems=problems + ([] if passed else lines))


# ---- the review queue ---------------------------------------------------------------------------------------------


@router.get("/review", response_model=QueueOut, summary="Unsure messages, masked and grouped")
async def review(sort: Literal["frequent", "newest"] = Query("frequent"), limit: int = Query(100, ge=1, le=1000),
                 _who: Principal = editor, studio: Studio = Depends(studio_of)) -> QueueOut:
    groups, waiting = await studio.review.groups(sort, limit)
    return QueueOut(waiting=waiting, groups=groups)


@router.post("/review/example", response_model=Saved, status_code=201,
             summary="Add a queue group's message as an example of an intent")
async def review_to_example(body: QueueToExample, who: Principal = editor,
                            studio: Studio = Depends(studio_of)) -> Saved:
    keys = body.checked()
    text = mask_personal_data(body.text)  # never personal data into the training files
    saved = _saved(studio, await studio.edit(lambda: studio.project.add_example(body.intent, text)))
    await studio.review.decide(keys, "example", who.name, text=" ".join(text.split()), intent=body.intent)
    return saved


@router.post("/review/article", summary="Mark a queue group as turned into a KB article")
async def review_to_article(body: QueueToArticle, who: Principal = editor,
                            studio: Studio = Depends(studio_of)) -> dict[str, int]:
    handled = await studio.review.decide(body.checked(), "article", who.name, text=mask_personal_data(body.text),
                                         article_id=body.article_id)
    return {"handled": handled}


@router.post("/review/dismiss", summary="Dismiss a queue group")
async def review_dismiss(body: QueueKeys, who: Principal = editor,
                         studio: Studio = Depends(studio_of)) -> dict[str, int]:
    return {"handled": await studio.review.decide(body.checked(), "dismissed", who.name)}


# ---- training, evaluation, activation -----------------------------------------------------------------------------


@router.post("/train", response_model=JobOut, status_code=202,
             summary="Train a model from the project in the background (one at a time); poll the job")
async def train(who: Principal = editor, studio: Studio = Depends(studio_of),
                services: Services = Depends(services_of)) -> JobOut:
    try:
        job_id, lock = await studio.engine.start_training(who.name)
    except StudioBusy as exc:
        raise HTTPException(409, str(exc)) from None
    services.spawn(studio.engine.run_job(job_id, lock), name=f"studio-train-{job_id}")
    job = await studio.engine.job(job_id)
    assert job is not None
    return JobOut.of(job, None)


@router.get("/jobs", response_model=list[JobOut], summary="Training jobs, newest first")
async def jobs(_who: Principal = editor, studio: Studio = Depends(studio_of)) -> list[JobOut]:
    live = await studio.engine.live_model()
    return [JobOut.of(job, live) for job in await studio.engine.jobs()]


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One job: state, progress, log, evaluation")
async def job(job_id: RowId, _who: Principal = editor, studio: Studio = Depends(studio_of)) -> JobOut:
    found = await studio.engine.job(job_id)
    if found is None:
        raise HTTPException(404, f"no job {job_id}")
    return JobOut.of(found, await studio.engine.live_model())


@router.post("/jobs/{job_id}/activate", response_model=ActivationOut,
             summary="Put the job's model live (the engine swaps it once loaded; checked before it counts)")
async def activate(job_id: RowId, request: Request, who: Principal = editor,
                   studio: Studio = Depends(studio_of)) -> ActivationOut:
    found = await studio.engine.job(job_id)
    if found is None:
        raise HTTPException(404, f"no job {job_id}")
    if found.state != "ready" or not found.model_path:
        raise HTTPException(409, f"job {job_id} has no evaluated model (state {found.state})")
    try:
        await studio.engine.activate(found.model_path, who.name, job_id=job_id)
    except ActivationFailed as exc:
        raise HTTPException(502, f"not activated, the previous model is still live: {exc}") from None
    return ActivationOut.of((await studio.engine.activations(1))[0])


@router.post("/rollback", response_model=ActivationOut, summary="Go back to the model live before the current one")
async def rollback(who: Principal = editor, studio: Studio = Depends(studio_of)) -> ActivationOut:
    try:
        await studio.engine.rollback(who.name)
    except ActivationFailed as exc:
        raise HTTPException(409, str(exc)) from None
    return ActivationOut.of((await studio.engine.activations(1))[0])


@router.get("/models", response_model=ModelsOut, summary="The live model and the activation history")
async def models(_who: Principal = editor, studio: Studio = Depends(studio_of)) -> ModelsOut:
    live = await studio.engine.live_model()
    rows = await studio.engine.activations()
    return ModelsOut(live=Path(live).name if live else None,
                     can_roll_back=bool(rows and rows[0].previous_model_path),
                     activations=[ActivationOut.of(r) for r in rows])
