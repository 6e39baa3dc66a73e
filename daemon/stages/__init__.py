"""The built-in stages, one module or package each; the registry imports every module here.

Nothing is listed by hand: a new stage is a new module in this package (or a plugin). Window
helpers shared by several stages live in `stages.windows`; the features stage's own in its package.
"""
