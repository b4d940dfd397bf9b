"""Is the Kafka cluster there? Asked once, before producing or consuming; librdkafka's own
log lines captured instead of printed.

Against a port nothing listens on, librdkafka logs a line per reconnect attempt (~370 in the
60 s `wh feed` waited for its deliveries) and a consumer just sees no messages, so
`wh ingest --stop-when-idle` exited 0. `check_broker` asks for the cluster's metadata for up
to `timeout` seconds and raises BrokerUnreachableError with the first reason librdkafka gave
(`_TRANSPORT`: connection refused, name not resolved…; `_AUTHENTICATION`; …), once.
`LibrdkafkaLog` is the capture: its `config()` (librdkafka's `logger` and `error_cb`) goes
into a client's configuration, and each distinct message is passed on once.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from warehouse.errors import BrokerUnreachableError

_NOISE = re.compile(r"\s*\(after \d+ms in state \w+(?:, \d+ identical error\(s\) suppressed)?\)")
_counter = 0
_counter_lock = threading.Lock()


def _normal(text: str) -> str:
    """A message without the parts that change from one attempt to the next."""
    return _NOISE.sub("", text).strip()


class LibrdkafkaLog:
    """librdkafka's log lines and error callbacks, kept instead of printed; `echo` (if given)
    receives each distinct message once."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        global _counter
        with _counter_lock:
            _counter += 1
            n = _counter
        self.echo = echo
        self.lines: list[str] = []
        self.errors: list[tuple[str, str]] = []  # (code name, text)
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.logger = logging.getLogger(f"wh.librdkafka.{n}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.handlers[:] = [_Keep(self)]

    def config(self) -> dict[str, Any]:
        return {"logger": self.logger, "error_cb": self.on_error}

    def on_error(self, err: Any) -> None:
        name = err.name() if hasattr(err, "name") else "ERROR"
        text = err.str() if hasattr(err, "str") else str(err)
        with self._lock:
            self.errors.append((name, text))
        self._pass_on(f"{name}: {text}")

    def reason(self) -> str | None:
        """The most telling captured message: a transport/auth error before 'all brokers down'."""
        with self._lock:
            errors = list(self.errors)
            lines = list(self.lines)
        for name, text in errors:
            if name != "_ALL_BROKERS_DOWN":
                return _normal(text)
        if errors:
            return _normal(errors[0][1])
        return _normal(lines[0]) if lines else None

    def _pass_on(self, text: str) -> None:
        key = _normal(text)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        if self.echo is not None:
            self.echo(key)


class _Keep(logging.Handler):
    def __init__(self, log: LibrdkafkaLog) -> None:
        super().__init__(logging.DEBUG)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        with self.log._lock:
            if len(self.log.lines) < 1000:
                self.log.lines.append(text)
        if record.levelno >= logging.WARNING:
            self.log._pass_on(text)


def check_broker(bootstrap: str, config: dict[str, Any] | None = None, *, timeout: float = 10.0) -> int:
    """Number of brokers in the cluster's metadata; BrokerUnreachableError when none answer
    within `timeout` seconds (nothing is printed meanwhile)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    log = LibrdkafkaLog()
    admin = AdminClient({**(config or {}), "bootstrap.servers": bootstrap, **log.config()})
    try:
        md = admin.list_topics(timeout=timeout)
        return len(md.brokers)
    except KafkaException as exc:
        admin.poll(0)  # serve the error callbacks and log lines that explain why
        reason = log.reason() or str(exc.args[0] if exc.args else exc)
        raise BrokerUnreachableError(
            f"Kafka at {bootstrap} is unreachable: no answer within {timeout:g} s ({reason}); start one with "
            "`wh broker`, or check --bootstrap / WH_KAFKA_BOOTSTRAP (and WH_KAFKA_* security settings)"
        ) from None
