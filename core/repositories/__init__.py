"""Queries the API and flows share; each takes a session, the caller owns the transaction."""
