"""Assets by stage, one module each: market_data, features, training, monitoring."""
