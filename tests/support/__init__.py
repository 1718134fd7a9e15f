"""Helpers shared by the tests: repo paths, CLI and config factories, loopback servers, runs."""
