"""The `depthcharge` command line: thin adapters over infra, exchange_sim, trading_daemon and ml."""
