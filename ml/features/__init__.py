"""The 110 features of FEATURES.md, one implementation for the live daemon and for batch jobs."""
