"""The one retry schedule: `min(cap, base · 2ⁿ) + uniform(0, jitter)` seconds before retry n
(n = 0, 1, … failures in a row). The jitter keeps clients that failed together from retrying
together: a sink outage (the consumer), an exchange's firewall (the capture worker), a webhook
receiver (the simulator's emitter)."""

from __future__ import annotations

import random
from dataclasses import dataclass


def backoff(attempt: int, base: float, cap: float, rng: random.Random, jitter: float | None = None) -> float:
    """Seconds before retry `attempt`; jitter defaults to `base`. No overflow far out."""
    return min(cap, base * 2 ** min(attempt, 60)) + rng.uniform(0.0, base if jitter is None else jitter)


@dataclass(frozen=True)
class Backoff:
    """A schedule's parameters, for a worker that keeps them (the capture worker, its spec)."""

    base: float = 1.0
    cap: float = 60.0
    jitter: float = 1.0

    def delay(self, n: int, rng: random.Random) -> float:
        return backoff(n, self.base, self.cap, rng, self.jitter)
