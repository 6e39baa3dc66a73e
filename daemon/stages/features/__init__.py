"""The `features` stage (`stage.py`): tumbling-window features, inline or in a process pool.

Nothing is imported here: the pool's forkserver preloads `window_math` alone, without the stage.
"""
