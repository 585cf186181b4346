"""Risk service: limits and kill switch per portfolio, pre-trade checks (analytics: issue 6)."""
