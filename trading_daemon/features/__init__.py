"""The daemon's live feature path: raw snapshot rows and closed candles in, model input windows out."""
