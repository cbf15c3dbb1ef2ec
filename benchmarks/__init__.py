"""Performance runs (``make bench``): they write results, they are never part of ``make test``."""
