"""The ML gate predicts under MemoryDenyWriteExecute, which the daemon's systemd unit keeps.

systemd is not running here, so the restriction is applied the way recent systemd applies it: the
kernel's own `prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)` (Linux ≥ 6.3), which refuses any mapping that is
writable and executable and any change that makes memory executable. A child process sets it, shows it is
in force, then serves the default CNN-LSTM through the gate's torch configuration; for contrast, torch's
default oneDNN kernels, which are generated at run time, fail under it.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "infra" / "systemd" / "depthcharge-daemon.service"

CHILD = textwrap.dedent(
    """
    import ctypes, mmap, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        print("UNSUPPORTED"); sys.exit(0)
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    buf = (ctypes.c_char * 4096).from_buffer(page)
    assert libc.mprotect(ctypes.c_void_p(ctypes.addressof(buf)), 4096, 0x5) != 0, "MDWE not in force"
    del buf

    import numpy as np, torch
    from ml.inference import Predictor
    from ml.models import create_model
    from ml.preprocessing import FeaturePreprocessor
    from trading_daemon.ml_gate.served import configure_torch

    rows = 100 + 5 * np.random.default_rng(0).standard_normal((300, 110))
    predictor = Predictor(create_model().eval(), FeaturePreprocessor.fit(rows))
    if sys.argv[1] == "gate":
        configure_torch(1)
    else:
        torch.set_num_threads(1)  # torch's defaults: oneDNN on
    try:
        for i in range(20):
            prediction = predictor.predict(rows[i : i + 60])
        predictor.predict_batch(np.stack([rows[i : i + 60] for i in range(64)]))
    except RuntimeError as exc:
        print("FAILED", exc); sys.exit(0)
    print("OK", prediction.direction)
    """
)


def _run(mode: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def _mdwe_supported() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(66, 0, 0, 0, 0) >= 0)  # PR_GET_MDWE answers on kernels that have it


@pytest.mark.skipif(not sys.platform.startswith("linux") or not _mdwe_supported(),
                    reason="needs Linux >= 6.3 (prctl PR_SET_MDWE)")  # fmt: skip
def test_the_gate_predicts_under_memory_deny_write_execute() -> None:
    assert _run("gate").startswith("OK")
    default = _run("torch-defaults")
    assert default.startswith("FAILED") and "could not create a primitive" in default
    unit = UNIT.read_text()
    assert "\nMemoryDenyWriteExecute=yes\n" in unit
