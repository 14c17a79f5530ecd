"""The ``depthcharge exchange-sim`` command: options, defaults and argument errors (no server started)."""

from __future__ import annotations

from click.testing import CliRunner

from depthcharge.cli import cli
from depthcharge.commands.exchange_sim import market_factory
from exchange_sim.config import SimConfig
from exchange_sim.venue import MarketSource, Venue


def test_help_documents_the_defaults() -> None:
    result = CliRunner().invoke(cli, ["exchange-sim", "--help"])
    assert result.exit_code == 0, result.output
    for text in (
        "--host",
        "127.0.0.1",
        "--port",
        "8090",
        "--seed",
        "42",
        "BTCUSDT,ETHUSDT,SOLUSDT",
        "--speed",
        "--api-key",
        "--api-secret",
        "--balance",
    ):
        assert text in result.output


def test_bad_arguments_are_refused_before_starting() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["exchange-sim", "--balance", "lots"])
    assert result.exit_code == 2 and "--balance" in result.output
    result = runner.invoke(cli, ["exchange-sim", "--symbols", "DOGEUSDT"])
    assert result.exit_code == 2 and "DOGEUSDT" in result.output
    result = runner.invoke(cli, ["exchange-sim", "--speed", "0"])
    assert result.exit_code == 2 and "--speed" in result.output


def test_market_factories_build_market_sources() -> None:
    for kind in ("ladder", "synthetic"):
        venue = Venue(SimConfig(port=0, symbols=("BTCUSDT",)))
        market = market_factory(kind, seed=1)(venue)
        assert isinstance(market, MarketSource)
        venue.attach_market(market)
        venue.step()
        assert venue.engine.books["BTCUSDT"].best_bid() is not None
