"""Real servers on one machine, without Docker: QuestDB and Apache Kafka from Maven Central.

    maven.py    pinned jars (and their dependencies) resolved once into $WH_CACHE_DIR/jars
    process.py  Java lookup, free loopback ports, a child process group that dies with us
    questdb.py  LocalQuestDBServer: QuestDB (HTTP /exec + ILP/HTTP, PG wire, ILP/TCP, health)
    kafka.py    LocalKafkaServer: single-node KRaft Kafka 4.x (broker + controller)
    envfile.py  the address lines `wh servers` prints and writes (shell-quoted, mode 0600)

`wh servers` starts them for a developer or CI and prints their addresses as environment
lines; the integration tests start their own when no address is given. Like
`warehouse.sql.chserver` for ClickHouse, each is a context manager: start, wait until it
answers, stop gracefully (SIGTERM), kill after a timeout.
"""

from __future__ import annotations
