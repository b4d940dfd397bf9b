"""The watchdog outside the simulator: a statistical bound on each trader's order and fill rates.

The account's own kill switch (broker.py) stops a trader past fixed limits (orders or notional
per minute). This one catches a strategy that runs away *below* those limits: a running replay
publishes, per trader, its orders and fills per bucket of event time; the patrol (Dagster's
`sim_watchdog` sensor, or anything calling `patrol`) compares the newest bucket with the
buckets before it and, beyond the bound, trips that trader's kill switch — a file the replay
reads before every batch. The trader's open orders are cancelled (KILL_SWITCH), it gets no more
callbacks, and the reason is in the run's summary (`halted`).

    $WH_HOME/sim/runs/<run>/activity.json   the replay's counts, rewritten (atomically) per batch
    $WH_HOME/sim/runs/<run>/kill.json       {trader: reason}, written by the patrol

Bound (WatchdogSettings): the newest bucket's count x trips when x > mean + k · max(std, √mean, 1)
of up to `history` buckets before it (at least `min_buckets`; quiet buckets count as 0) and
x ≥ `floor`. Only upward deviations trip: a strategy that slows down endangers nothing. The
√mean and 1 floors keep a steady, sparse strategy from tripping on one order more than usual.
Each look checks every bucket of the last `history` + 1 against the buckets before it (a batch
of the replay spans several buckets); the newest is still filling (counts only grow), so a
burst can trip before its bucket ends.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from warehouse.config import Settings, WatchdogSettings
    from warehouse.sim.broker import Account

NS = 1_000_000_000
METRICS = ("orders", "fills")


def runs_dir(settings: Settings) -> Path:
    return settings.home / "sim" / "runs"


def deviation(counts: Sequence[int], bound: WatchdogSettings) -> tuple[float, float, float] | None:
    """(mean, std, limit) of the buckets before the newest when the newest passes the bound, else None."""
    if len(counts) < bound.min_buckets + 1:
        return None
    base = counts[-(bound.history + 1) : -1]
    x = counts[-1]
    mean = sum(base) / len(base)
    std = math.sqrt(sum((c - mean) ** 2 for c in base) / (len(base) - 1))
    limit = mean + bound.k * max(std, math.sqrt(mean), 1.0)
    if x >= bound.floor and x > limit:
        return mean, std, limit
    return None


@dataclass
class Trip:
    run: str
    trader: str
    reason: str


class RunMonitor:
    """The replay's side: publish the counts after each batch, read the kill switch before it."""

    def __init__(self, root: Path, run: str, bound: WatchdogSettings) -> None:
        self.run = "".join(c if c.isalnum() or c in "-_." else "_" for c in run) or "run"
        self.dir = root / self.run
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bucket_ns = bound.bucket_s * NS
        self.keep = 2 * bound.history + 1  # the newest history+1 buckets, each with its history
        self._seen: dict[str, tuple[int, int]] = {}
        self._counts: dict[str, dict[str, dict[int, int]]] = {}
        self._first: int | None = None
        self._kill_stamp: tuple[int, int] | None = None
        self._kills: dict[str, str] = {}

    def publish(self, accounts: Mapping[str, Account], now_ns: int) -> None:
        current = now_ns // self.bucket_ns
        if self._first is None:
            self._first = current
        oldest = current - self.keep + 1
        traders = {}
        for name, acct in accounts.items():
            n_orders, n_fills = self._seen.get(name, (0, 0))
            counts = self._counts.setdefault(name, {m: {} for m in METRICS})
            for order in acct.orders[n_orders:]:
                b = order.created_at // self.bucket_ns
                counts["orders"][b] = counts["orders"].get(b, 0) + 1
            for fill in acct.fills[n_fills:]:
                b = fill.ts // self.bucket_ns
                counts["fills"][b] = counts["fills"].get(b, 0) + 1
            self._seen[name] = (len(acct.orders), len(acct.fills))
            for m in METRICS:
                for b in [b for b in counts[m] if b < oldest]:
                    del counts[m][b]
            start = max(self._first, oldest)
            traders[name] = {
                "halted": acct.halted,
                **{m: [counts[m].get(b, 0) for b in range(start, current + 1)] for m in METRICS},
            }
        doc = {"pid": os.getpid(), "bucket_s": self.bucket_ns // NS, "now_ns": now_ns, "traders": traders}
        tmp = self.dir / f"activity.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.dir / "activity.json")

    def kills(self) -> dict[str, str]:
        """{trader: reason} of the switches tripped so far (read again only when the file changed)."""
        path = self.dir / "kill.json"
        try:
            st = path.stat()
        except FileNotFoundError:
            return self._kills
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._kill_stamp:
            try:
                self._kills = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
                self._kill_stamp = stamp
            except (OSError, ValueError, AttributeError):
                pass  # being replaced: read on the next batch
        return self._kills

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def patrol(settings: Settings) -> tuple[int, list[Trip]]:
    """Check every running replay under $WH_HOME; trip the kill switch of each trader past the
    bound. Returns (replays watched, new trips). Folders of replays that died are removed."""
    root = runs_dir(settings)
    bound = settings.watchdog
    watched, trips = 0, []
    for folder in sorted(root.glob("*/")) if root.is_dir() else []:
        try:
            doc = json.loads((folder / "activity.json").read_text())
        except (OSError, ValueError):
            continue
        if not _alive(int(doc.get("pid", 0))):
            shutil.rmtree(folder, ignore_errors=True)
            continue
        watched += 1
        kill_file = folder / "kill.json"
        try:
            killed = json.loads(kill_file.read_text())
        except (OSError, ValueError):
            killed = {}
        new = {}
        for trader, t in doc.get("traders", {}).items():
            if t.get("halted") or trader in killed:
                continue
            why = None
            for metric in METRICS:
                counts = t.get(metric, [])
                # every bucket the replay may have filled since the last look, each against the
                # buckets before it: a batch spans several buckets, and a burst's first buckets
                # must not become the baseline of its later ones
                for end in range(max(bound.min_buckets + 1, len(counts) - bound.history), len(counts) + 1):
                    found = deviation(counts[:end], bound)
                    if found is not None:
                        mean, std, limit = found
                        why = (f"watchdog: {counts[end - 1]} {metric} in {doc['bucket_s']} s of event time against "
                               f"{mean:.1f} ± {std:.1f} in the {min(end - 1, bound.history)} buckets before "
                               f"(bound {limit:.1f})")  # fmt: skip
                        break
                if why:
                    new[trader] = why
                    break
        if new:
            tmp = folder / f"kill.json.{os.getpid()}.tmp"
            tmp.write_text(json.dumps({**killed, **new}))
            os.replace(tmp, kill_file)
            trips += [Trip(folder.name, trader, why) for trader, why in new.items()]
    return watched, trips
