"""`python -m llava_cot ...` is the same as the `llava-cot` command."""

from llava_cot.cli import main

raise SystemExit(main())
