import sys

from services.downstream.main import main

sys.exit(main())
