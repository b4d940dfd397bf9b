"""Ingest: raw bytes → typed tick frames, in chunks, never a whole file in memory.

Every source yields `SourceBatch`es: typed rows in the internal layout (times as int64
ns, `_offset` = position in the source, `_raw` = the row as it arrived) plus the rows
that could not even be decoded (rule `malformed`), which go to `wh.rejects` like any
other bad tick.
"""
