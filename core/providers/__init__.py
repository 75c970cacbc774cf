"""Provider API clients that stream pages and raise the typed errors of `core.errors`."""
