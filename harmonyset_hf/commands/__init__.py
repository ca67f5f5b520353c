"""One module per `harmonyset` verb (or verb group); each defines ``register(cli)``.

The modules here only declare arguments and call into the package: all logic lives in the
modules one level up. Keep heavy imports (torch, transformers, datasets) inside the run
functions so that ``harmonyset --help`` stays fast.
"""
