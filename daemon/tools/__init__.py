"""Operator tools that talk to a running daemon over its loopback HTTP endpoint: `top`, `tap`."""
