"""The built-in sinks, one module or package each; the registry imports every module here.

Nothing is listed by hand: a new sink is a new module in this package (or a plugin). The wire
encoding they share lives in `daemon.wire`.
"""
