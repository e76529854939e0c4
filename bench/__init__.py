"""The benchmark harness (``make bench``): measures, never asserts."""
