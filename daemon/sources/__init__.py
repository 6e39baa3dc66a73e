"""The built-in sources, one module or package each; the registry imports every module here.

Nothing is listed by hand: a new source is a new module in this package (or a plugin).
"""
