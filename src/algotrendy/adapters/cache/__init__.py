"""Cache adapters for the ``core.ports.Cache`` port.

``memory.MemoryCache`` is the embedded default (TTL + LRU, one process); ``redis.RedisCache`` is
the split-mode cache shared by every process (needs the ``redis`` extra).
"""
