from lipjax.cli import main

raise SystemExit(main())
