"""`python -m daemon` is `ingestd`."""

from daemon.cli import entrypoint

entrypoint()
