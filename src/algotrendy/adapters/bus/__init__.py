"""Event-bus adapters behind ``core.events.Bus``.

``memory.InMemoryBus`` (asyncio queues, the all-in-one default) and ``nats.NatsBus`` (NATS
JetStream durable pull consumers, split mode). ``app/container.py`` picks one.
"""
