"""Strategies service: strategy definitions (a ``StrategyTemplate`` plus a default universe and
tags), their immutable versions, and the built-in templates to start from.

Backtests, optimizations and deployments of a strategy belong to other services; they refer to
a strategy by id and version through ``interface.py``.
"""
