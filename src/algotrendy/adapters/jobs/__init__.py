"""Job executors: a local spawn process pool and a Ray cluster."""
