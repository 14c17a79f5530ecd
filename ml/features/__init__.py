"""The 110 features of docs/features.md, one implementation for the live daemon and for batch jobs."""
