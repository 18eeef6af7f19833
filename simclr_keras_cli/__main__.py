"""`python -m simclr_keras_cli`: the same as the `simclr-keras` command."""

import sys

from simclr_keras_cli.main import main

sys.exit(main())
