"""``python -m harmonyset_hf.train``: the training entry point (also under accelerate launch / torchrun)."""

import sys

from .loop import main

if __name__ == "__main__":
    sys.exit(main())
