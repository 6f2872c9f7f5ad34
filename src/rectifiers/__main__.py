"""`python -m rectifiers ...` is the same as the `rectifiers` command."""

from rectifiers.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
