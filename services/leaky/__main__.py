import sys

from services.leaky.main import main

sys.exit(main())
