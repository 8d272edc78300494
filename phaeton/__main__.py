"""`python -m phaeton` runs the `phaeton` command."""
import sys

from phaeton.cli import main

sys.exit(main())
