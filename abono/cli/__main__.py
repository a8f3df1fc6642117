"""`python -m abono.cli`: the same as the `abono` command."""

from abono.cli.main import main

raise SystemExit(main())
