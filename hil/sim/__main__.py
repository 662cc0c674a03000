import sys

from hil.sim.board import main

sys.exit(main())
