"""`GET /media/{name}`: a stored file behind a signed, expiring link (what agents send to citizens' channels)."""

from __future__ import annotations

import re
import time

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse

from gateway.media import link_valid, mime_of
from gateway.services import Services, services_of

router = APIRouter(tags=["media"])
NAME = re.compile(r"^[0-9a-f]{64}\.[a-z0-9]{2,5}$")


@router.get(
    "/media/{name}",
    summary="A file an agent sent, for the citizen's channel (signed link; staff use /api/inbox/media)",
    responses={403: {"description": "wrong or expired signature"}, 404: {"description": "no such file"}},
)
async def signed_media(
    name: str,
    exp: int = Query(description="expiry, seconds since the epoch"),
    sig: str = Query(max_length=128, description="signature of the name and the expiry"),
    services: Services = Depends(services_of),
) -> FileResponse:
    if not NAME.match(name):
        raise HTTPException(400, "not a media name")
    if not link_valid(name, exp, sig, services.media_key, time.time()):
        raise HTTPException(403, "the link is wrong or has expired")
    return file_response(services, name)


def file_response(services: Services, name: str) -> FileResponse:
    path = services.settings.data_dir / "media" / name
    if not NAME.match(name) or not path.is_file():
        raise HTTPException(404, "no such file")
    # nosniff + the stored type: a file is only ever shown as what the upload check found it to be.
    return FileResponse(path, media_type=mime_of(name), headers={"X-Content-Type-Options": "nosniff",
                                                                  "Cache-Control": "private, max-age=3600"})
