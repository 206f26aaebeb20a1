import sys

from services.loadgen.main import main

sys.exit(main())
