"""The pages' own files (scripts, styles), served by name from a fixed list: nothing else in the folder is reachable."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response


def serve_files(router: APIRouter, path: str, directory: Path, files: Mapping[str, str]) -> None:
    """GET `path` (with a `{name}` in it) answers the listed files of `directory` with their media type, else 404."""

    @router.get(path, include_in_schema=False)
    async def static_file(name: str) -> Response:
        if name not in files:
            return Response("not found", status_code=404)
        return FileResponse(directory / name, media_type=files[name], headers={"Cache-Control": "no-cache"})
