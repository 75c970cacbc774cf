"""HTTP routes, a few lines each; the logic lives in core and the api/*_service.py modules."""
