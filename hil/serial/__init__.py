"""The serial side: one console reader, console watchers, one raw REPL client.
What is built on them, SerialTarget and esptool flashing, is in hil/targets/ (serial.py, flash.py).

The same code drives the simulated board, qemu-microbit, qemu-esp32 and real boards; they differ only in the
pyserial URL the console is opened on and in how the board is reset.
"""
