"""Sync engines: provider pages in, upserted rows out, cursors saved only after a complete pass."""
