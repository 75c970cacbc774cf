"""Prefect wrappers around the core sync engines: one flow per synced source, one task each."""
