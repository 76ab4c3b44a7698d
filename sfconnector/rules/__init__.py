"""Routing, attribution and reward rules: pure functions of data, no I/O."""
