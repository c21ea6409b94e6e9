"""`python -m seglab ...` entry point."""
from seglab.toolbox.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
