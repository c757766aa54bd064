"""``python -m extserver``."""
import sys

from extserver.cli import main

sys.exit(main())
