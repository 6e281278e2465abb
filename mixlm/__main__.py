"""`python -m mixlm`: the same CLI as the `mixlm` script (for machines where the package is on PYTHONPATH only)."""

from mixlm.cli import main

main()
