import sys

from vhil_serve.cli import main

sys.exit(main())
