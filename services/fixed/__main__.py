import sys

from services.fixed.main import main

sys.exit(main())
