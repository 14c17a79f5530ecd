"""The daemon's status and control API (FastAPI), its authentication, the live WebSocket and the dashboard
it serves. Routes are thin adapters over the live components gathered in `context.DaemonContext`
(docs/api.md)."""
