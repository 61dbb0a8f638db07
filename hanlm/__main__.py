import sys

from hanlm.cli import main

sys.exit(main())
