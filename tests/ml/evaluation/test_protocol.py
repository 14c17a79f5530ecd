"""The walk-forward protocol on recorded markets: every model on every fold, intervals around every point
value, per-recording tables, merged runs, and the report's files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.candidate import MODEL_NAME, quick_config
from ml.evaluation.protocol import ProtocolConfig, RecordingData, merge_results, run_protocol
from ml.evaluation.report import write_report
from ml.workflow import labelled_features
from schemas.features import feature_spec
from tests.fixtures.recorded import recorded_arrow

SPEC = feature_spec()


def _recording(symbol: str) -> RecordingData:
    rec = recorded_arrow(seconds=1800, symbol=symbol, seed=7)
    return RecordingData(symbol.lower(), [labelled_features(rec.rows, rec.candles, spec=SPEC)], {"seed": 7})


@pytest.mark.slow  # two 30-minute recordings (cached), 2 folds each with a one-epoch network
def test_protocol_runs_every_model_on_every_fold_and_reports(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    base = quick_config(seed=0, epochs=1)
    config = replace(
        base,
        model=replace(
            base.model, cnn_channels=(8,), cnn_kernel_sizes=(3,), lstm_hidden=8, last_row_skip=True
        ),
        baselines=("majority", "logistic"),
    )
    protocol = ProtocolConfig(n_folds=2, test_fraction=0.2, validation_fraction=0.3, n_resamples=200)
    recordings = [_recording("BTCUSDT"), _recording("ETHUSDT")]
    parts = [run_protocol([r], config, protocol) for r in recordings]
    result = merge_results(parts)
    assert [(f.recording, f.fold) for f in result.folds] == [
        ("btcusdt", 0),
        ("btcusdt", 1),
        ("ethusdt", 0),
        ("ethusdt", 1),
    ]
    assert result.models == [MODEL_NAME, "majority", "logistic"]
    assert all(f.n_train > 0 and f.n_validation > 0 and f.n_test > 0 for f in result.folds)
    with pytest.raises(ValueError, match="appears twice"):
        merge_results([parts[0], parts[0]])

    summary = json.loads(json.dumps(write_report(result, tmp_path) and result.summary(), default=float))
    pooled = summary["pooled"]
    assert pooled["bootstrap"]["n_samples"] == sum(f.n_test for f in result.folds)
    assert pooled["bootstrap"]["n_series"] == 4
    for per in pooled["metrics"].values():
        for h in ("10s", "30s", "60s"):
            for v in per[h].values():
                assert v["low"] - 1e-12 <= v["value"] <= v["high"] + 1e-12
    for b in ("majority", "logistic"):
        g = pooled["cnn_lstm_gain_over"][b]["10s"]["macro_f1"]
        assert g["verdict"] == ("win" if g["low"] > 0 else "loss" if g["high"] < 0 else "tie")
    assert set(summary["per_recording"]) == {"btcusdt", "ethusdt"}
    assert set(summary["backtest"][MODEL_NAME]) == {"taker", "maker"}
    assert summary["calibration"]["confidence_head"]["ece_after"] >= 0
    assert np.isfinite(summary["calibration"]["models"]["logistic"]["10s"]["ece_after"])

    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5
    assert "Does the CNN-LSTM beat every baseline" in html
    saved = np.load(tmp_path / "predictions.npz")
    assert saved[f"fold0_{MODEL_NAME}"].shape == (result.folds[0].n_test, 3, 3)
    assert json.loads((tmp_path / "summary.json").read_text())["protocol"]["n_folds"] == 2
