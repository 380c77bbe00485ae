"""Our errors as livekit's, for both faces.

livekit retries an ``APIError`` whose ``retryable`` is true; ours say when that is worth
it.  Ours never hold the API key, so chaining them keeps the detail in livekit's log line
without leaking anything.
"""

from __future__ import annotations

from livekit.agents import APIConnectionError, APIConnectOptions, APIError, APIStatusError, APITimeoutError

import xai_voice

__all__ = ["retry_after_wait", "to_livekit"]


def to_livekit(exc: xai_voice.XaiVoiceError) -> APIError:
    """One of livekit's errors for one of ours, with the real HTTP status where there was
    one.  A refused certificate or a closed plugin is never retryable."""
    if isinstance(exc, xai_voice.XaiStatusError):
        # livekit makes every 4xx but 408/429 non-retryable, as we do
        return APIStatusError(str(exc), status_code=exc.status, body=exc.body, retryable=exc.retryable)
    if isinstance(exc, xai_voice.XaiTimeoutError):
        return APITimeoutError(str(exc))
    if isinstance(exc, xai_voice.XaiConnectionError):
        return APIConnectionError(str(exc), retryable=exc.retryable)
    return APIError(str(exc), retryable=exc.retryable)


def retry_after_wait(
    err: APIError, exc: BaseException, conn_options: APIConnectOptions, attempt: int
) -> float:
    """Seconds to wait before raising ``err`` (from attempt number ``attempt``, 1-based)
    so that livekit's own retry comes no sooner than the service's ``Retry-After`` asked.
    A ``Retry-After`` longer than an attempt's budget (``conn_options.timeout``) is not
    worth waiting for inside livekit's retries: ``err`` is then made final instead."""
    retry_after: float | None = getattr(exc, "retry_after", None)
    if retry_after is None or not err.retryable or attempt > conn_options.max_retry:
        return 0.0
    if retry_after > conn_options.timeout:
        err.retryable = False
        return 0.0
    return max(0.0, float(retry_after) - conn_options._interval_for_retry(attempt - 1))
