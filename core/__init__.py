"""The calsync domain: settings, database, models, provider clients and sync engines."""
