"""``python -m gateway``: the ``doku-gateway`` command line."""

import sys

from .cli import main

sys.exit(main())
