"""Process lifecycle of the trading daemon: integration with the service manager (systemd notify), and
start-up steps that retry until the venue lets them succeed (`startup`)."""
