"""Security events written to `flex_events`, never with secrets in them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import FlexEvent

SOURCE = "auth"


def record(session: AsyncSession, event_type: str, payload: dict[str, Any], tenant_id: str | None = None) -> None:
    """Add an audit event to `session`; it is stored when the session commits."""
    session.add(FlexEvent(event_type=f"auth.{event_type}", payload=payload, source=SOURCE, tenant_id=tenant_id))
