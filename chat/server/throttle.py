"""Login throttling: a token bucket per account and per address, bounded in memory.

Every login attempt takes a token from its account's bucket and from its address's bucket when it starts (so a
hundred attempts in flight at once count as a hundred, not as none); a successful one gives them back. An empty
bucket refuses the attempt, saying how long to wait. With the defaults (3 tokens, 3 a minute) that is Ergo's
"3 failed logins a minute", with Synapse's burst: three guesses at once, then one every 20 seconds.

The buckets live in one dictionary per limiter of at most `max_keys` entries: when it is full the bucket touched
longest ago goes first (a full bucket carries no information, and stale ones are nearly full), so an attacker
spraying keys costs memory that stays bounded.
"""

from __future__ import annotations

from collections import OrderedDict


class FailureLimiter:
    __slots__ = ("_buckets", "burst", "max_keys", "per_second")

    def __init__(self, burst: int, per_minute: float, max_keys: int = 10_000) -> None:
        self.burst = float(burst)
        self.per_second = per_minute / 60.0
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.per_second)

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may try again (0: now)."""
        tokens = self._tokens(key, now)
        if tokens >= 1.0 or self.per_second <= 0:
            return 0.0 if tokens >= 1.0 else float("inf")
        return (1.0 - tokens) / self.per_second

    def take(self, key: str, now: float) -> None:
        """One attempt for `key` starts (call only when `wait` said 0)."""
        self._set(key, self._tokens(key, now) - 1.0, now)

    def give_back(self, key: str, now: float) -> None:
        """The attempt succeeded: it costs nothing."""
        tokens = self._tokens(key, now) + 1.0
        if tokens >= self.burst:
            self._buckets.pop(key, None)  # a full bucket is the same as none
        else:
            self._set(key, tokens, now)

    def _set(self, key: str, tokens: float, now: float) -> None:
        buckets = self._buckets
        buckets[key] = (tokens, now)
        buckets.move_to_end(key)
        while len(buckets) > self.max_keys:
            buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)
