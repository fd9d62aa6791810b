"""The development user and its API key, kept in the state folder between runs."""

from __future__ import annotations

import secrets
from pathlib import Path

from db.engine import create_engine, create_session_factory
from db.users import create_api_key, create_user, get_user_by_username, verify_api_key

DEV_USERNAME = "dev"
DEV_EMAIL = "dev@localhost.localdomain"


async def ensure_dev_key(database_url: str, key_file: Path) -> str:
    """Return the stored development key if it still works, else create the user and a new key."""
    engine = create_engine(database_url, pool_size=1)
    session_factory = create_session_factory(engine)
    try:
        if key_file.exists():
            stored = key_file.read_text().strip()
            async with session_factory() as session:
                if await verify_api_key(session, stored) is not None:
                    return stored
        async with session_factory.begin() as session:
            user = await get_user_by_username(session, DEV_USERNAME)
            if user is None:
                # Nobody logs in as this user; the password only fills the column.
                user = await create_user(session, username=DEV_USERNAME, email=DEV_EMAIL,
                                         password=secrets.token_urlsafe(24), role="admin")
            issued = await create_api_key(session, user.id, "development")
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(issued.plaintext + "\n")
        key_file.chmod(0o600)
        return issued.plaintext
    finally:
        await engine.dispose()
