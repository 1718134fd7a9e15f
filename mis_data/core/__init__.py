"""The records, ids, config and run folder every other part reads: imports nothing above it."""
