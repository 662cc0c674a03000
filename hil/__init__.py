"""Targets and runners: how a device under test is started, reached and released."""
