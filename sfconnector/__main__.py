"""`python -m sfconnector` is the `sfconnector` command."""

from sfconnector.cli import main

main()
