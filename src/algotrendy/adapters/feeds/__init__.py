"""Live market data feeds (implementations of ``core.market.LiveFeed``).

- ``replay.ReplayFeed``: stored bars replayed as live updates; the embedded default that paper
  trading and demos run on.
- ``ccxt_ws.CcxtWebsocketFeed``: a crypto venue's websocket through ccxt.pro (bars and trades).

Import from the submodule you need: ``ccxt`` is heavy and only ``ccxt_ws`` loads it.
"""
