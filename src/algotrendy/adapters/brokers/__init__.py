"""Broker adapters behind ``core.venue.Venue``: the paper broker, ccxt exchanges and Alpaca."""
