"""Settings checks that stop a misconfigured production process at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from settings import ModelConfig, Settings

REMOTE_MODEL = ModelConfig(name="gpt", provider="openai", api_key="sk-real-key")


@pytest.mark.parametrize("secret", [None, "secret", "short-key"])
def test_production_needs_a_real_jwt_secret(secret: str | None) -> None:
    with pytest.raises(ValidationError, match="PAF_JWT_SECRET"):
        Settings(environment="production", models=[REMOTE_MODEL], jwt_secret=secret)


def test_production_accepts_a_long_jwt_secret() -> None:
    settings = Settings(environment="production", models=[REMOTE_MODEL], jwt_secret="k" * 40)

    assert settings.jwt_secret is not None


def test_development_runs_without_a_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAF_JWT_SECRET", raising=False)

    assert Settings(environment="development").jwt_secret is None
