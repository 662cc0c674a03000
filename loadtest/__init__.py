"""Locust broadcast load scenarios."""
