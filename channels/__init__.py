"""Channel connectors: one folder per channel, each with the same four parts (verify, parse, render, send)."""
