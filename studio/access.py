"""Who may use the studio: content editors and admins (a logged-in session, with CSRF on changes), or an API client
holding the operator's admin token. Every studio route depends on `editor`, defined here and nowhere else."""

from __future__ import annotations

from fastapi import Depends

from gateway.auth import CONTENT_ROLES, Principal, require_roles

editor_principal = require_roles(*CONTENT_ROLES)
editor = Depends(editor_principal)

__all__ = ["Principal", "editor", "editor_principal"]
