"""Trading service: orders, fills, positions, accounts, brokers, reconciliation."""
