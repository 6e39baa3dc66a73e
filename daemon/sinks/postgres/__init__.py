"""The `postgres` sink: readings, feature records and alerts into PostgreSQL by binary COPY,
one transaction a batch, idempotent, refused rows dead-lettered one by one."""

from daemon.sinks.postgres.sink import PostgresConfig, PostgresSink

__all__ = ["PostgresConfig", "PostgresSink"]
