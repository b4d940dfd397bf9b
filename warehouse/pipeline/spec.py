"""Pipeline specs: pipelines/<name>.yaml says what a pipeline reads, how its rules act, and
where it writes — read by `wh ingest --pipeline`, `wh import --pipeline` and, one set of
assets per spec, by Dagster.

    name: ticks
    source:
      kafka: {topic: ticks, group: wh-ingest}        # or
      files: {path: landing/tardis/*.csv.gz, format: tardis, asset_class: crypto}   # or
      capture: {exchange: binanceusdm, symbols: [BTCUSDT], topic: binance_ticks}  # `wh capture` → Kafka
    sanitize:
      policies: {crossed_book: reject}               # rule: reject | raise
      out_of_order_tolerance_s: 5
      spike_band: 0.10
    sinks: [clickhouse, duckdb]
    batch: {rows: 50000, seconds: 2}

A capture spec describes both halves of a live feed: `wh capture --pipeline NAME` runs the
worker that puts the exchange's frames on `capture.topic`, `wh ingest --pipeline NAME`
stores that topic (group `capture.group`) with the spec's rules, sinks and batch size.
A relative `files.path` is under $WH_HOME (the landing folder lives beside the warehouse).
Every field is validated (pydantic); a mistake is one ConfigError naming the file and the
field. The defaults of `wh ingest` and `wh import` are the shipped pipelines/ticks.yaml and
pipelines/files.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from warehouse.errors import ConfigError
from warehouse.ingest.decode import FIELDS, UNIT_NS, Mapping
from warehouse.records import Kind
from warehouse.sanitize import RULES, Policy, SanitizeConfig

NS = 1_000_000_000
SinkName = Literal["duckdb", "clickhouse", "questdb"]
RuleName = Literal[RULES]  # type: ignore[valid-type]
Channel = Literal["quotes", "trades"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSource(_Strict):
    topic: str = Field(default="ticks", min_length=1)
    group: str = Field(default="wh-ingest", min_length=1)


class FileSource(_Strict):
    path: str | None = Field(default=None, description="glob of the files to import; relative: under $WH_HOME")
    format: Literal["tardis", "csv", "parquet"] = "tardis"
    kind: Literal["quotes", "trades"] | None = None  # csv/parquet; tardis and wh's own Parquet detect it
    map: dict[str, str] = Field(default_factory=dict)  # field → column
    const: dict[str, str] = Field(default_factory=dict)  # field → value for every row
    ts_unit: Literal["s", "ms", "us", "ns"] = "us"
    ts_format: str | None = None
    asset_class: str = "crypto"  # tardis files

    @model_validator(mode="after")
    def _fields(self) -> Self:
        known = set(FIELDS[Kind.QUOTE]) | set(FIELDS[Kind.TRADE])
        for what, names in (("map", self.map), ("const", self.const)):
            unknown = sorted(set(names) - known)
            if unknown:
                raise ValueError(
                    f"{what}: unknown field(s) {', '.join(unknown)}; fields are {', '.join(sorted(known))}"
                )
        if self.format == "csv" and not self.map:
            raise ValueError("format csv needs a column map (map: {timestamp: COLUMN, bid: COLUMN, …})")
        return self

    def mapping(self, kind: Kind) -> Mapping:
        assert self.ts_unit in UNIT_NS
        return Mapping(kind, dict(self.map), dict(self.const), ts_unit=self.ts_unit, ts_format=self.ts_format)

    def files(self, home: Path) -> list[Path]:
        if self.path is None:
            return []
        pattern = Path(self.path)
        base = pattern if pattern.is_absolute() else home / pattern
        anchor = Path(base.anchor)
        return sorted(p for p in anchor.glob(str(base.relative_to(anchor))) if p.is_file())


class BackoffSpec(_Strict):
    base_s: float = Field(default=1.0, gt=0)
    cap_s: float = Field(default=60.0, gt=0)
    jitter_s: float = Field(default=1.0, ge=0)


class CaptureSource(_Strict):
    """An exchange's public WebSocket streams, captured by `wh capture` into a Kafka topic,
    from which `wh ingest --pipeline` (the same spec) stores them."""

    exchange: str = Field(min_length=1, description="ccxt id: binanceusdm (binance-futures) or binance")
    symbols: list[str] = Field(min_length=1)  # the exchange's ids (BTCUSDT) or ccxt's (BTC/USDT:USDT)
    channels: list[Channel] = Field(default_factory=lambda: list[Channel](["quotes", "trades"]), min_length=1)
    topic: str = Field(min_length=1)  # its own: the spec's Dagster assets are named after it
    group: str = Field(default="wh-ingest", min_length=1)
    queue: int = Field(default=100_000, gt=0)  # frames between the socket and the producer
    stall_s: float = Field(default=60.0, gt=0)  # no frame for this long: reconnect
    backoff: BackoffSpec = Field(default_factory=BackoffSpec)

    @model_validator(mode="after")
    def _venue(self) -> Self:
        from warehouse.capture.venues import ALIASES, VENUES

        if ALIASES.get(self.exchange, self.exchange) not in VENUES:
            raise ValueError(f"exchange {self.exchange!r}: one of {', '.join(sorted({*VENUES, *ALIASES}))}")
        return self


class Source(_Strict):
    kafka: KafkaSource | None = None
    files: FileSource | None = None
    capture: CaptureSource | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if sum(x is not None for x in (self.kafka, self.files, self.capture)) != 1:
            raise ValueError("give exactly one of kafka: {…}, files: {…} or capture: {…}")
        return self

    @property
    def stream(self) -> KafkaSource | None:
        """The Kafka topic and group `wh ingest` reads: the source's, or the capture's."""
        if self.capture is not None:
            return KafkaSource(topic=self.capture.topic, group=self.capture.group)
        return self.kafka


class SanitizeSpec(_Strict):
    policies: dict[RuleName, Policy] = Field(default_factory=dict)
    out_of_order_tolerance_s: float = Field(default=5.0, gt=0)
    max_future_s: float = Field(default=86_400.0, gt=0)
    spike_band: float = Field(default=0.10, gt=0)
    spike_window: int = Field(default=21, ge=2)
    spike_min_samples: int = Field(default=5, ge=1)

    def config(self) -> SanitizeConfig:
        return SanitizeConfig(
            max_future=int(self.max_future_s * NS),
            out_of_order_tolerance=int(self.out_of_order_tolerance_s * NS),
            spike_band=self.spike_band,
            spike_window=self.spike_window,
            spike_min_samples=self.spike_min_samples,
            policies=dict(self.policies),
        )


class BatchSpec(_Strict):
    rows: int = Field(default=50_000, gt=0)
    seconds: float = Field(default=2.0, gt=0)


class PipelineSpec(_Strict):
    name: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    source: Source
    sanitize: SanitizeSpec = Field(default_factory=SanitizeSpec)
    sinks: list[SinkName] = Field(default_factory=lambda: list[SinkName](["duckdb", "clickhouse"]), min_length=1)
    batch: BatchSpec = Field(default_factory=BatchSpec)

    @model_validator(mode="after")
    def _unique_sinks(self) -> Self:
        if len(set(self.sinks)) != len(self.sinks):
            raise ValueError("sinks: name each sink once")
        return self


def pipelines_dir() -> Path:
    from warehouse.sql.files import project_root

    return project_root() / "pipelines"


def load_spec(path: Path | str) -> PipelineSpec:
    """Read and validate a spec; a name without a slash is looked up in pipelines/."""
    import yaml

    p = Path(path)
    if not p.suffix and "/" not in str(path):
        p = pipelines_dir() / f"{path}.yaml"
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the pipeline spec ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a pipeline spec is a mapping (name:, source:, sinks:, …)")
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'spec'}: {e['msg']}"
                             for e in exc.errors(include_input=False, include_url=False))  # fmt: skip
        raise ConfigError(f"{p}: {problems}") from None


def all_specs() -> list[tuple[Path, PipelineSpec]]:
    """Every spec in pipelines/ (Dagster builds one set of assets per spec)."""
    return [(p, load_spec(p)) for p in sorted(pipelines_dir().glob("*.yaml"))]
