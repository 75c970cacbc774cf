"""Shared test fixtures' machinery: real Prefect server, runner, databases and the emulator."""
