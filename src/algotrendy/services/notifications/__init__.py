"""Notifications service: delivery of messages for platform events, with history.

This first part sends the welcome email on ``user.registered`` and records every delivery;
channels, templates, preferences and alert rules grow here.
"""
