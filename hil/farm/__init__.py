"""The board farm: labgrid places and reservations (places.py), exporter configs (export.py), the loopback
rehearsal (rehearse.py) and `vhil farm` (cli.py). See docs/farm.md."""
