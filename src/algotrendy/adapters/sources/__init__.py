"""Market data sources: adapters that page bar history (and trades, books, prices) out of
vendors. ``base`` holds the contract and the untrusted-data rule; each vendor is one module
(``ccxt_source``, ``yahoo``, ``alpaca``, ``polygon``, ``covalent``), imported by path so that
loading one does not load ccxt.
"""

from .base import BarSource, OrderBook, RejectedRow, SourceBars

__all__ = ["BarSource", "OrderBook", "RejectedRow", "SourceBars"]
