"""Jobs service: persisted long-running jobs (backtests, sweeps, training) with progress, ETA and cancel."""
