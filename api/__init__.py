"""The calsync HTTP API: FastAPI app, dependencies and routes."""
