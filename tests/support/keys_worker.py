"""A worker process that reads (creating it if needed) an installation key: imported by a test's process pool,
so it imports nothing heavy."""

from pathlib import Path

from gateway.keys import installation_secret


def read_race_key(directory: str) -> str:
    return installation_secret(Path(directory), "race.key")
