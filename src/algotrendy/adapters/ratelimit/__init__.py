"""Rate limiter adapters for the ``core.ports.RateLimiter`` port (token buckets).

``memory.MemoryRateLimiter`` is the embedded default (one process); ``redis.RedisRateLimiter`` keeps
the buckets in Redis, updated by one atomic Lua script on the server's clock, so every process
shares them (needs the ``redis`` extra). Both give the same decisions and the same numbers.
"""
