"""Pure foundation: ids, errors, clock, events and the ports (protocols) every layer shares.

Nothing here does I/O, uses asyncio or imports a framework.
"""
