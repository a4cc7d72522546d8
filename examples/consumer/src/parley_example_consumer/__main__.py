from parley_example_consumer import main

raise SystemExit(main())
