"""The execution state machine (a pure function) and the faust agent that hosts it."""
