"""Execution: trade intents become orders on the exchange, tracked by state machines, reconciled, audited."""
