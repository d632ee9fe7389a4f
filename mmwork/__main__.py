import sys

from mmwork.cli import main

sys.exit(main())
