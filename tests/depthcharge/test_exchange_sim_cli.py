"""`depthcharge exchange-sim` as a process: an accelerated exchange still authenticates a wall-clock client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from exchange_sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET
from trading_daemon.exchange.http import rest_signature


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, headers: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.load(resp)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_accelerated_exchange_checks_request_times_against_the_wall_clock() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "depthcharge", "exchange-sim", "--port", str(port), "--symbols", "BTCUSDT",
         "--market", "ladder", "--speed", "20"],
        env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                _get(f"{base}/v5/market/time")
                break
            except OSError:
                assert time.monotonic() < deadline, "exchange-sim never answered"
                time.sleep(0.2)
        time.sleep(1.0)  # at 20x the exchange clock is now far outside any recv window of the wall clock
        exchange_ms = int(_get(f"{base}/v5/market/time")["result"]["timeNano"]) // 1_000_000
        wall_ms = int(time.time() * 1000)
        assert exchange_ms - wall_ms > 10_000, "the exchange clock is not accelerated"
        query = "accountType=UNIFIED"
        recv_window = "5000"
        signature = rest_signature(DEFAULT_API_SECRET, str(wall_ms), DEFAULT_API_KEY, recv_window, query)
        reply = _get(
            f"{base}/v5/account/wallet-balance?{query}",
            {
                "X-BAPI-API-KEY": DEFAULT_API_KEY,
                "X-BAPI-TIMESTAMP": str(wall_ms),
                "X-BAPI-RECV-WINDOW": recv_window,
                "X-BAPI-SIGN": signature,
            },
        )
        assert reply["retCode"] == 0, reply
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=20)
