"""The `postgres` sink: readings and feature records into PostgreSQL by binary COPY, idempotent."""

from daemon.sinks.postgres.sink import PostgresConfig, PostgresSink

__all__ = ["PostgresConfig", "PostgresSink"]
