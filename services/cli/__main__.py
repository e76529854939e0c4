"""``python -m services.cli`` is the ``switchboard`` command."""

from .main import main

main()
