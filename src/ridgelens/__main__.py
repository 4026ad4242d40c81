import sys

from ridgelens.cli import main

sys.exit(main())
