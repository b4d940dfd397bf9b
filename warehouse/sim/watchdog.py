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
of up to `history` buckets before it (at least `min_buckets`) and x ≥ `floor`. Only buckets in
which the market had ticks count — a bucket where the trader did nothing counts as 0, a
night or a weekend without ticks does not count at all (its zeros would make the morning's
first orders look like a burst). Only upward deviations trip: a strategy that slows down endangers nothing. The
√mean and 1 floors keep a steady, sparse strategy from tripping on one order more than usual.
Each look checks every bucket of the last `history` + 1 against the buckets before it (a batch
of the replay spans several buckets); the newest is still filling (counts only grow), so a
burst can trip before its bucket ends.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
        self._active: list[int] = []  # buckets in which the market had ticks, oldest first
        self._kill_stamp: tuple[int, int] | None = None
        self._kills: dict[str, str] = {}

    def publish(self, accounts: Mapping[str, Account], now_ns: int, ticks_ns: Any = None) -> None:
        """After a batch: the traders' counts per bucket; `ticks_ns` the batch's tick times
        (which buckets the market was open in). Never raises: a watchdog must not stop a replay."""
        with contextlib.suppress(OSError):  # its folder removed, a full disk: the replay goes on unwatched
            self._publish(accounts, now_ns, ticks_ns)

    def _publish(self, accounts: Mapping[str, Account], now_ns: int, ticks_ns: Any) -> None:
        import numpy as np

        current = now_ns // self.bucket_ns
        seen: list[int] = []
        if ticks_ns is not None:
            seen = [int(x) for x in np.unique(np.asarray(ticks_ns, dtype=np.int64) // self.bucket_ns)]
        for b in [*seen, current]:
            if not self._active or b > self._active[-1]:
                self._active.append(b)
        del self._active[: -self.keep]
        oldest = self._active[0]
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
            traders[name] = {
                "halted": acct.halted,
                **{m: [counts[m].get(b, 0) for b in self._active] for m in METRICS},
            }
        doc = {"pid": os.getpid(), "bucket_s": self.bucket_ns // NS, "now_ns": now_ns, "traders": traders}
        self.dir.mkdir(parents=True, exist_ok=True)
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


STALE_S = 3600.0  # a run folder untouched this long, whose process is gone here, is removed


def patrol(settings: Settings) -> tuple[int, list[Trip]]:
    """Check every running replay under $WH_HOME; trip the kill switch of each trader past the
    bound. Returns (replays watched, new trips). A folder is removed only when its process is
    not running here *and* it has not been written for an hour (a replay in another container
    sharing WH_HOME has a pid this host does not know)."""
    root = runs_dir(settings)
    watched, trips = 0, []
    for folder in sorted(root.glob("*/")) if root.is_dir() else []:
        try:
            found = _patrol_run(folder, settings.watchdog)
        except OSError:
            continue  # finished (removed) while being read: nothing to watch
        if found is not None:
            watched += 1
            trips += found
    return watched, trips


def _patrol_run(folder: Path, bound: WatchdogSettings) -> list[Trip] | None:
    """New trips of one run (None: not running)."""
    import time

    activity = folder / "activity.json"
    try:
        doc = json.loads(activity.read_text())
    except ValueError:
        return None
    if not _alive(int(doc.get("pid", 0))) and time.time() - activity.stat().st_mtime > STALE_S:
        shutil.rmtree(folder, ignore_errors=True)
        return None
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
    return [Trip(folder.name, trader, why) for trader, why in new.items()]
