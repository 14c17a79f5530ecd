"""The Parquet lake as an IO manager: what the assets hand each other.

* a :class:`ml.lake.RawPartition` (``raw_snapshots``) → four files of the partition (rows, trades,
  candles, lookback rows) under ``LAKE_DIR/<dataset>/symbol=<S>/<start>.parquet``;
* a labelled_features ``pa.Table`` → one Parquet file per partition (``labelled_features``), or one file
  for an unpartitioned asset (``training_dataset``), refused unless it carries this code's feature spec;
* a ``msgspec.Struct`` (``model_candidate``'s evidence) → JSON beside them.

Every file carries the Arrow schema of ``schemas.arrow``, the feature-spec hash and its window in the
Parquet metadata (``ml.lake``). Tables in Postgres are written by the assets through resources, not here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import msgspec
import pyarrow as pa

from ml.lake import LakeLayout, RawPartition
from orchestration.partitions import SYMBOL
from schemas.features import FeatureSpec, feature_spec


def _partition(context: dg.OutputContext | dg.InputContext, key: str) -> tuple[str, int]:
    """(symbol, start ms) of a time × symbol partition key of the asset the context is about."""
    partitions_def = context.asset_partitions_def
    if not isinstance(partitions_def, dg.MultiPartitionsDefinition):
        raise TypeError(f"{context.asset_key.to_user_string()} is not partitioned by time × symbol")
    multi = partitions_def.get_partition_key_from_str(key)
    window = partitions_def.time_window_for_partition_key(key)
    return multi.keys_by_dimension[SYMBOL], int(window.start.timestamp() * 1000)


class LakeIOManager(dg.ConfigurableIOManager):
    """Stores asset values in the Parquet lake (module docstring)."""

    # Its own fields rather than nested resources: Dagster 1.13 warns when it initialises nested ones.
    lake_dir: str
    snapshot_interval_ms: int

    def layout(self) -> LakeLayout:
        return LakeLayout(Path(self.lake_dir))

    def spec(self) -> FeatureSpec:
        return feature_spec(self.snapshot_interval_ms)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        layout = self.layout()
        spec = self.spec()
        name = context.asset_key.path[-1]
        paths: dict[str, Path]
        if isinstance(obj, RawPartition):
            paths = layout.write_raw(obj, spec_hash=spec.spec_hash)
        elif isinstance(obj, pa.Table):
            if context.has_asset_partitions:
                symbol, start_ms = _partition(context, context.asset_partition_key)
                path = layout.write_labelled(obj, dataset=name, symbol=symbol, start_ms=start_ms, spec=spec)
            else:
                from ml.datasets import write_labelled_features

                path = write_labelled_features(obj, layout.asset_path(name), spec=spec)
            paths = {name: path}
        elif isinstance(obj, msgspec.Struct):
            path = self._json_path(context, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(msgspec.json.format(msgspec.json.encode(obj)))
            os.replace(tmp, path)
            paths = {name: path}
        else:
            raise TypeError(
                f"the lake stores RawPartition, pa.Table and msgspec.Struct values, not {type(obj).__name__} "
                f"(asset {name})"
            )
        context.add_output_metadata(
            {
                **{f"file_{dataset}": dg.MetadataValue.path(str(p)) for dataset, p in paths.items()},
                "bytes_written": sum(p.stat().st_size for p in paths.values()),
            }
        )

    def load_input(self, context: dg.InputContext) -> Any:
        upstream = context.upstream_output
        if upstream is None or context.asset_key is None:
            raise TypeError(f"input {context.name} does not come from an asset: the lake cannot load it")
        name = context.asset_key.path[-1]
        wanted = context.dagster_type.typing_type
        layout = self.layout()
        spec = self.spec()
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            if len(keys) != 1:
                raise ValueError(f"{name}: load one partition at a time, got {len(keys)}")
            symbol, start_ms = _partition(context, keys[0])
            if wanted is RawPartition:
                return layout.read_raw(symbol, start_ms)
            return layout.read_labelled(dataset=name, symbol=symbol, start_ms=start_ms, spec=spec)
        if isinstance(wanted, type) and issubclass(wanted, msgspec.Struct):
            return msgspec.json.decode(self._json_path(context, name).read_bytes(), type=wanted)
        from ml.datasets import read_labelled_features

        return read_labelled_features(layout.asset_path(name), spec=spec)

    def _json_path(self, context: dg.OutputContext | dg.InputContext, name: str) -> Path:
        return self.layout().root / name / f"{name}.json"
