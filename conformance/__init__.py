"""Autobahn|Testsuite harness and the ViperHTTP API contract suite."""
