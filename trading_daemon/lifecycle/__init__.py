"""Process lifecycle of the trading daemon: integration with the service manager (systemd notify)."""
