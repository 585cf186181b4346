"""Portfolio service: portfolios owned by users, the unit trading, risk and reports work on."""
