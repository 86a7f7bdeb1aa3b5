"""Who may call what. Until agents log in (the inbox issue), staff routes take the operator's admin token."""

from __future__ import annotations

import hmac

from fastapi import Depends, Header, HTTPException

from gateway.services import Services, services_of


async def require_admin(
    authorization: str | None = Header(default=None, description="Bearer <ADMIN_TOKEN>"),
    services: Services = Depends(services_of),
) -> str:
    """The caller's name for the audit trail; 401/403 unless the admin token is presented."""
    token = services.settings.admin_token
    if not token:
        raise HTTPException(status_code=403, detail="staff routes are disabled until ADMIN_TOKEN is set")
    if authorization is None or not authorization.startswith("Bearer "):
        raise HTTPException(status_code=401, detail="send Authorization: Bearer <ADMIN_TOKEN>",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(authorization[len("Bearer "):].encode(), token.encode()):
        raise HTTPException(status_code=403, detail="wrong token")
    return "admin"
