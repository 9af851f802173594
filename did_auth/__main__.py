from did_auth.cli import main

raise SystemExit(main())
