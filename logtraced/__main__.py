"""`python -m logtraced` runs the command line."""

from logtraced.cli import main

raise SystemExit(main())
