"""Per-token rate limit of the HTTP API: an in-memory token bucket per API token hash.

In memory on purpose: the limit protects this process from one busy client, so it does not
need to survive a restart or be shared between processes (each web process limits its own
share). Keys are token hashes, never tokens, and only valid tokens get a bucket, so the
table is bounded by the number of accounts.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask

DEFAULT_RATE_PER_MINUTE = 60
_EXTENSION_KEY = "renkei_api_ratelimit"
_create_lock = threading.Lock()


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Allow `rate_per_minute` requests per key on average, with bursts up to the same number."""

    def __init__(self, rate_per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.rate_per_minute = rate_per_minute
        self.capacity = float(max(rate_per_minute, 1))
        self.per_second = rate_per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False when the configured rate is 0 or less (no limit)."""
        return self.rate_per_minute > 0

    def hit(self, key: str) -> int | None:
        """Take one request from `key`'s bucket: None when allowed, else the seconds to wait (≥ 1)."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(tokens=self.capacity, updated=now)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.per_second)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - bucket.tokens) / self.per_second))

    def reset(self) -> None:
        """Forget every bucket (tests, and a config change)."""
        with self._lock:
            self._buckets.clear()


def limiter_for(app: Flask) -> RateLimiter:
    """The app's limiter, made on first use from API_RATE_PER_MINUTE (made again if the setting changed)."""
    rate = int(app.config.get("API_RATE_PER_MINUTE", DEFAULT_RATE_PER_MINUTE))
    with _create_lock:
        limiter = app.extensions.get(_EXTENSION_KEY)
        if limiter is None or limiter.rate_per_minute != rate:
            limiter = app.extensions[_EXTENSION_KEY] = RateLimiter(rate)
        return limiter
