"""The cluster side: where it is (`bootstrap_servers`), the embedded broker for demos and
tests (librdkafka's mock cluster, and a port forwarder to give it a fixed port), and the
offsets a group has committed (`wh status`)."""

from __future__ import annotations

import threading
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from warehouse.config import Settings, check_bootstrap
from warehouse.errors import ConfigError, KafkaError


def bootstrap_servers(settings: Settings, explicit: str | None = None) -> str:
    """--bootstrap, else WH_KAFKA_BOOTSTRAP, else the address `wh broker` left in WH_HOME."""
    if explicit:
        return check_bootstrap(explicit)  # no user:password@ in it: librdkafka would log it
    if settings.kafka.bootstrap:
        return settings.kafka.bootstrap
    if settings.broker_file.is_file():
        addr = settings.broker_file.read_text().strip()
        if addr:
            return addr
    raise ConfigError("no Kafka cluster: start one with `wh broker` (in another terminal) or set WH_KAFKA_BOOTSTRAP")


class MockBroker:
    """librdkafka's mock cluster: real Kafka protocol on 127.0.0.1, in this process.

    Measured limits: ~5 MB kept per partition (older messages are dropped), topics are
    auto-created with 4 partitions, CreateTopics times out. Fine for demos and tests;
    use a real cluster (WH_KAFKA_BOOTSTRAP) for volume.
    """

    def __init__(self, brokers: int = 1) -> None:
        from confluent_kafka import Producer

        self._client = Producer({"test.mock.num.brokers": brokers, "log_level": 3})
        md = self._client.list_topics(timeout=10)
        b = md.brokers[min(md.brokers)]
        self.bootstrap = f"{b.host}:{b.port}"

    def close(self) -> None:
        self._client.flush(1)


class PortForwarder:
    """Accepts on a chosen port and pipes to the broker (the mock picks its own port).

    Kafka clients bootstrap here, then follow the broker's advertised address.
    """

    def __init__(self, port: int, target: str) -> None:
        import socket

        self.target = target.rsplit(":", 1)
        self.sock = socket.create_server(("127.0.0.1", port))
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket

        self.sock.settimeout(0.5)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection((self.target[0], int(self.target[1])))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def committed_offsets(bootstrap: str, topic: str, group: str, extra: dict[str, str] | None = None) -> dict[int, int]:
    """Offsets the group has committed to Kafka, per partition."""
    return {p: pos.committed for p, pos in group_positions(bootstrap, topic, group, extra).items()
            if pos.committed is not None}  # fmt: skip


@dataclass(frozen=True)
class Position:
    """Where a group stands on one partition: its committed offset (None: nothing committed),
    the partition's first and next offset, and the lag (messages not yet committed)."""

    committed: int | None
    low: int
    high: int

    @property
    def lag(self) -> int:
        return self.high - max(self.committed if self.committed is not None else self.low, self.low)


def group_positions(bootstrap: str, topic: str, group: str, extra: dict[str, str] | None = None) -> dict[int, Position]:
    """Per partition of `topic`: the group's committed offset, the watermarks, the lag (`wh status`)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, **(extra or {})})
    try:
        md = c.list_topics(topic, timeout=5)
        parts = md.topics.get(topic)
        if parts is None or parts.error is not None:
            return {}
        tps = [TopicPartition(topic, p) for p in sorted(parts.partitions)]
        committed = {tp.partition: tp.offset for tp in c.committed(tps, timeout=5) if tp.offset >= 0}
        out = {}
        for tp in tps:
            low, high = c.get_watermark_offsets(tp, timeout=5, cached=False)
            out[tp.partition] = Position(committed.get(tp.partition), low, high)
        return out
    except KafkaException as exc:
        raise KafkaError(f"cannot read the group's offsets from {bootstrap}: {exc}") from exc
    finally:
        c.close()
