"""`depthcharge record` as a real process: systemd notifications, SIGTERM, and no lost rows."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest

from exchange_sim.config import SimConfig
from exchange_sim.liquidity import LadderMarket
from exchange_sim.server.app import SimServer
from infra.db.connection import Database
from infra.db.repositories import read_snapshots, read_trades
from schemas.times import now_ms

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@pytest.mark.slow
async def test_sigterm_stops_cleanly_with_every_row_recorded(db: Database, tmp_path: Path) -> None:
    server = SimServer(
        SimConfig(port=0, symbols=SYMBOLS), lambda v: LadderMarket(v.engine, seed=5, trade_share=0.2)
    )
    await server.start()
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.setblocking(False)
    started = now_ms()
    env = {
        **os.environ, "DATABASE_URL": db.conninfo, "VAR_DIR": str(tmp_path / "var"),
        "TRADING_PAIRS": ",".join(SYMBOLS), "BYBIT_REST_URL": server.base_url,
        "BYBIT_WS_PUBLIC_URL": f"{server.ws_url}/v5/public/linear", "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "1000000",
    }  # fmt: skip
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "depthcharge", "record", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        messages: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while "READY=1" not in messages:
            assert loop.time() < deadline, "no READY=1 from the daemon"
            assert proc.returncode is None, (await proc.communicate())[1].decode()
            try:
                messages.append(notify.recv(4096).decode())
            except BlockingIOError:
                await asyncio.sleep(0.05)
        await asyncio.sleep(3.5)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await server.stop()
    while True:
        try:
            messages.append(notify.recv(4096).decode())
        except BlockingIOError:
            break
    notify.close()
    assert proc.returncode == 0, stderr.decode()
    assert "WATCHDOG=1" in messages and "STOPPING=1" in messages
    assert any(m.startswith("STATUS=recording BTCUSDT,ETHUSDT,SOLUSDT") for m in messages)
    out = stdout.decode()
    built = re.search(r"rows built: (\d+) .*; trades (\d+);", out)
    assert built is not None, out
    assert "0 spooled" in out and "0 spool files left" in out, out
    rows, trades = int(built.group(1)), int(built.group(2))
    assert rows >= 9 and trades > 0
    with db.connect() as conn:
        stored_rows = sum(read_snapshots(conn, s, started - 2_000, now_ms()).num_rows for s in SYMBOLS)
        stored_trades = sum(read_trades(conn, s, started - 60_000, now_ms()).num_rows for s in SYMBOLS)
    assert (stored_rows, stored_trades) == (rows, trades)  # flushed on SIGTERM: nothing lost
