"""A simulated ESP32 running MicroPython, behind a real pty (`python -m hil.sim`). See docs/hil.md."""
