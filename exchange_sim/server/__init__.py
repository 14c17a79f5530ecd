"""The network face of the paper exchange: Bybit v5 REST, public and private WebSocket, admin API."""
