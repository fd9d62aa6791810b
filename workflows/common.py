"""Retry policies and failure descriptions shared by the workflows."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, FailureError

BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
# Records of how a run ended must not be lost, so these retry until PostgreSQL is reachable.
BOOKKEEPING_RETRY_POLICY = RetryPolicy(initial_interval=timedelta(milliseconds=500),
                                       maximum_interval=timedelta(seconds=10), maximum_attempts=0)


def failure_message(error: BaseException) -> str:
    """Return the failure's own message, without the activity and child workflow wrappers."""
    while isinstance(error, (ActivityError, ChildWorkflowError)) and error.cause is not None:
        error = error.cause
    if isinstance(error, ApplicationError) and error.type:
        return f"{error.type}: {error.message}"
    return str(error.message if isinstance(error, FailureError) else error)
