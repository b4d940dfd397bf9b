"""The named query files' headers, read without an engine."""

from __future__ import annotations


def test_every_window_and_interval_parameter_has_a_range_from_1() -> None:
    from warehouse.sql import queries
    from warehouse.sql.files import queries_dir

    paths = sorted(queries_dir().glob("*.sql")) + sorted((queries_dir() / "internal").glob("*.sql"))
    for path in paths:
        for p in queries.parse_query_file(path).params:
            if p.name in ("window", "interval", "period"):
                assert p.low is not None and int(p.low) >= 1, (path.name, p)
