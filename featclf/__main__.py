"""``python -m featclf`` runs the ``featclf`` command."""

import sys

from .cli import main

sys.exit(main())
