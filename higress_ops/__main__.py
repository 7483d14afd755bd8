from higress_ops.cli import main

raise SystemExit(main())
