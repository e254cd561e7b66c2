"""Decisions and status: pure functions of the spec, the observed objects and the time."""
