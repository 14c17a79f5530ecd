"""`depthcharge demo`: the whole loop on the embedded defaults (depthcharge/demo/loop.py, docs/demo.md)."""
