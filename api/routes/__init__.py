"""HTTP routes, a few lines each; the logic lives in core and api/sync_service.py."""
