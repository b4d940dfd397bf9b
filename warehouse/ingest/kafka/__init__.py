"""Kafka: one module per job.

    broker.py    where the cluster is; the embedded broker (librdkafka's mock) for demos
                 and tests; a group's committed offsets, watermarks and lag per partition
    producer.py  ticks → JSON messages (key = symbol), idempotent producer
    wire.py      message values → typed tick batches + one reject per bad message
    signals.py   SIGINT/SIGTERM as a stop event for long-running commands

The consumer (exactly once) is warehouse/ingest/consumer.py.
"""

from warehouse.ingest.kafka.broker import (
    MockBroker,
    PortForwarder,
    Position,
    bootstrap_servers,
    committed_offsets,
    group_positions,
)
from warehouse.ingest.kafka.producer import MALFORMED_SAMPLES, FeedReport, encode, produce
from warehouse.ingest.kafka.signals import stop_signals
from warehouse.ingest.kafka.wire import decode_messages

__all__ = [
                                           "MALFORMED_SAMPLES",
                                           "FeedReport",
                                           "MockBroker",
                                           "PortForwarder",
                                           "Position",
                                           "bootstrap_servers",
                                           "committed_offsets",
                                           "decode_messages",
                                           "encode",
                                           "group_positions",
                                           "produce",
                                           "stop_signals",
]  # fmt: skip
