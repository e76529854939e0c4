"""``switchboard``: a command line for people — import, export and validate flows, run and inspect executions."""
