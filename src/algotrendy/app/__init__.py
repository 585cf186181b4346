"""Composition root: settings, container, ASGI app and CLI."""
