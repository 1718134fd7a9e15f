"""The build: runs the stages in order, then splits, decisions, decontamination, exports."""
