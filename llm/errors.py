"""Translation of HTTP failures into ProviderError, shared by every provider."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from llm.types import ProviderError

# Statuses where the same request can succeed later; every other 4xx is final.
RETRYABLE_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504, 529}
MAX_RETRY_AFTER_SECONDS = 600.0


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Return the delay in seconds from `retry-after-ms` or `retry-after` (seconds or HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return min(max(float(milliseconds) / 1000, 0.0), MAX_RETRY_AFTER_SECONDS)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def status_error(provider: str, status_code: int, body: str, headers: Mapping[str, str]) -> ProviderError:
    """Build the ProviderError for an HTTP error response."""
    retryable = status_code in RETRYABLE_STATUSES or status_code >= 500
    return ProviderError(
        f"{provider} returned HTTP {status_code}: {body[:500]}",
        retryable=retryable,
        status_code=status_code,
        retry_after=parse_retry_after(headers) if retryable else None,
    )


def connection_error(provider: str, error: Exception) -> ProviderError:
    return ProviderError(f"{provider} could not be reached: {error}", retryable=True)


@contextmanager
def translated_errors(provider: str, status_type: type[Any], connection_type: type[Any]) -> Iterator[None]:
    """Turn an SDK's HTTP status and connection exceptions into ProviderError."""
    try:
        yield
    except status_type as error:
        raise status_error(provider, error.status_code, error.response.text, error.response.headers) from error
    except connection_type as error:
        raise connection_error(provider, error) from error
