"""The studio's parts built from the gateway's services: the project on disk, the review queue, the model engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Depends, HTTPException, Request

from gateway.coordination import LockTimeout
from gateway.keys import installation_secret
from gateway.services import Services, services_of
from studio.engine_ops import EngineSettings, ModelEngine, default_paths
from studio.project import ProjectError, TrainingProject
from studio.review import ReviewQueue

PROJECT_LOCK = "studio:project"
T = TypeVar("T")


@dataclass
class Studio:
    services: Services
    project: TrainingProject
    review: ReviewQueue
    engine: ModelEngine

    @asynccontextmanager
    async def editing(self) -> AsyncIterator[None]:
        """One edit of the project files at a time, across workers."""
        try:
            async with self.services.coordination.lock(PROJECT_LOCK, hold_seconds=60, wait_seconds=15):
                yield
        except LockTimeout:
            raise HTTPException(409, "someone else is saving the training data; try again") from None

    async def edit(self, change: Callable[[], T]) -> T:
        """Apply one project edit under the lock; a refused edit becomes a 422 with the reasons."""
        import asyncio

        async with self.editing():
            try:
                return await asyncio.to_thread(change)
            except ProjectError as exc:
                raise HTTPException(422, {"message": "not saved", "problems": exc.problems}) from None


def build_studio(services: Services) -> Studio:
    settings: Any = services.settings  # the app's Settings: the core's and the studio's own (studio/settings.py)
    project = TrainingProject(settings.studio_project_dir)
    review = ReviewQueue(services.db, settings.studio_confidence_threshold)
    models_dir, cache_dir = default_paths(settings.data_dir, settings.rasa_models_dir)
    engine = ModelEngine(
        EngineSettings(settings.rasa_url.rstrip("/"), models_dir, cache_dir, settings.rasa_models_dir,
                       rasa_token=installation_secret(settings.data_dir, "rasa.key", settings.rasa_token)),
        services.db, services.coordination, services.http, project, review,
    )
    return Studio(services, project, review, engine)


def studio_of(request: Request, services: Services = Depends(services_of)) -> Studio:
    """FastAPI dependency: the app's studio (built on first use from its services)."""
    state: Any = request.app.state
    studio = getattr(state, "studio", None)
    if studio is None or studio.services is not services:
        studio = build_studio(services)
        state.studio = studio
    return studio  # type: ignore[no-any-return]
