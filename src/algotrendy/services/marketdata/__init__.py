"""Market data service: bars, indicators, chart styles, quality, live feeds, order books."""
