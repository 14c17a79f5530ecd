"""`depthcharge evaluate`: the evaluation protocol (docs/ml.md, "Evaluation protocol") on offline recordings
of the synthetic market, with an HTML report and a JSON summary; with several `--variants`, the ablation
table of the CNN-LSTM over them.

A thin adapter: the recordings are made (or read back) by `depthcharge.offline_recording.cache`, the
protocol is `ml.evaluation.protocol.run_protocol`, the report `ml.evaluation.report.write_report`. No
database is needed.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import click

from depthcharge.offline_recording.cache import RecordingSpec
from infra.settings import load_settings

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
# name → (seed, shift after s, fixed regime); the protocol's recordings are never used for tuning, the
# development ones are (docs/ml.md).
RECORDINGS: dict[str, tuple[int, int | None, str | None]] = {
    "shift": (11, 5400, None),  # regimes switching, the scheduled shift 3/4 of the way in
    "switching": (23, None, None),  # regimes switching, no shift
    "volatile": (37, None, "volatile"),  # the volatile regime throughout (slow to record: 5x the orders)
    "dev_a": (101, None, None),  # the ablation's development recording
    # Seed 102 tuned the combined configuration, so it must never be one of the held-out defaults.
    "dev_b": (102, 3600, None),  # regimes switching, the shift half way
}
PROTOCOL_RECORDINGS = "shift,switching,volatile"


def recording_specs(names: str, seconds: int, symbols: tuple[str, ...]) -> list[RecordingSpec]:
    """The named recordings at ``seconds`` long (a shift keeps its place in proportion: 3/4 or 1/2)."""
    specs = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name not in RECORDINGS:
            raise click.BadParameter(
                f"unknown recording {name!r}; known: {', '.join(RECORDINGS)}", param_hint="--recordings"
            )
        seed, shift, regime = RECORDINGS[name]
        shift_at = None if shift is None else round(seconds * shift / 7200)
        specs.append(RecordingSpec(name, symbols, seconds, seed, shift_at, regime))
    if not specs:
        raise click.BadParameter("name at least one recording", param_hint="--recordings")
    return specs


def parse_dead_band(value: str) -> float | None:
    """``default`` → None (the labels' 0.5 bps); ``taker``/``maker`` → the round-trip cost; else bps."""
    from ml.backtest import MAKER_FEE_BPS, TAKER_FEE_BPS

    if value == "default":
        return None
    if value in ("taker", "maker"):
        return 2 * (TAKER_FEE_BPS if value == "taker" else MAKER_FEE_BPS)
    try:
        band = float(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not default, taker, maker or a number of bps", param_hint="--dead-band"
        ) from None
    if not band >= 0:
        raise click.BadParameter("the dead band must be ≥ 0 bps", param_hint="--dead-band")
    return band


@click.command()
@click.option(
    "--recordings",
    default=PROTOCOL_RECORDINGS,
    show_default=True,
    help=f"Comma-separated, of {', '.join(RECORDINGS)}.",
)
@click.option(
    "--seconds",
    type=click.IntRange(min=600),
    default=7200,
    show_default=True,
    help="Length of each recording.",
)
@click.option("--symbols", default=",".join(DEFAULT_SYMBOLS), show_default=True)
@click.option(
    "--variants",
    default="combined",
    show_default=True,
    help="Comma-separated configurations (ml.evaluation.ablation); several make an ablation table.",
)
@click.option(
    "--dead-band",
    default="default",
    show_default=True,
    help="default (0.5 bps), taker or maker (the round-trip cost), or bps.",
)
@click.option("--folds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--test-fraction", type=click.FloatRange(0.01, 0.5), default=0.15, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--stride",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Every n-th window is a sample.",
)
@click.option("--resamples", type=click.IntRange(min=100), default=1000, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Output directory (default var/evaluation/<time>).",
)
@click.option("--refresh-recordings", is_flag=True, help="Record again instead of reading the cache.")
def evaluate(
    recordings: str,
    seconds: int,
    symbols: str,
    variants: str,
    dead_band: str,
    folds: int,
    test_fraction: float,
    epochs: int,
    seed: int,
    stride: int,
    resamples: int,
    out_dir: Path | None,
    refresh_recordings: bool,
) -> None:
    """Walk-forward evaluation of the CNN-LSTM and every baseline, with intervals, calibration and backtests."""
    import torch

    from depthcharge.offline_recording.cache import cached_labelled_features
    from ml.candidate import quick_config
    from ml.datasets import InsufficientData
    from ml.evaluation.ablation import VARIANTS, ablation_row, render_ablation, variant_config
    from ml.evaluation.protocol import ProtocolConfig, RecordingData, run_protocol
    from ml.evaluation.report import write_report

    settings = load_settings()
    chosen = tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
    specs = recording_specs(recordings, seconds, chosen)
    names = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise click.BadParameter(
            f"unknown variants {unknown}; known: {', '.join(VARIANTS)}", param_hint="--variants"
        )
    band = parse_dead_band(dead_band)
    try:
        protocol = ProtocolConfig(
            n_folds=folds, test_fraction=test_fraction, n_resamples=resamples, seed=seed
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--folds / --test-fraction") from None
    out = out_dir or settings.var_dir / "evaluation" / time.strftime("%Y%m%dT%H%M%S")
    cache = settings.var_dir / "recordings"
    torch.set_num_threads(1)  # small models: one thread is as fast, and leaves the machine to others
    data = []
    for spec in specs:
        tables = cached_labelled_features(spec, cache, log=click.echo, refresh=refresh_recordings)
        data.append(RecordingData(spec.name, tables, spec.describe()))
    rows = []
    for name in names:
        base = quick_config(seed=seed, epochs=epochs)
        config = replace(variant_config(name, base), stride=stride)
        if band is not None:
            config = replace(config, dead_band_bps=band)
        click.echo(f"variant {name}: {VARIANTS[name][0]}")
        try:
            result = run_protocol(data, config, protocol, log=click.echo)
        except InsufficientData as exc:
            raise click.ClickException(
                f"variant {name}: {exc}. Each recording is {seconds} s in {folds} folds: "
                "use a longer --seconds or fewer --folds."
            ) from None
        target = out / name if len(names) > 1 else out
        paths = write_report(result, target, title=f"Depthcharge evaluation: {name}")
        _print_table(result.summary())
        click.echo(f"report {paths['report']}, summary {paths['summary']}")
        rows.append(ablation_row(name, result))
    if len(names) > 1:
        table = render_ablation(rows, [int(h) for h in result.horizons_s])
        (out / "ablation.md").write_text(table + "\n")
        (out / "ablation.json").write_text(json.dumps(rows, indent=1, default=float) + "\n")
        click.echo(table)


def _print_table(summary: dict[str, object]) -> None:
    pooled = summary["pooled"]
    assert isinstance(pooled, dict)
    for model, per in pooled["metrics"].items():
        cells = []
        for h, v in per.items():
            f1, ll = v["macro_f1"], v["log_loss"]
            cells.append(
                f"{h} F1 {f1['value']:.3f} [{f1['low']:.3f}, {f1['high']:.3f}] LL {ll['value']:.3f} [{ll['low']:.3f}, {ll['high']:.3f}]"
            )
        click.echo(f"  {model:<18} " + "; ".join(cells))
    click.echo(f"  CNN-LSTM beats every baseline: {json.dumps(pooled['beats_every_baseline'])}")
