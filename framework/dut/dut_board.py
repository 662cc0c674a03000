# What the DUT app needs from a board whatever framework serves it: joining Wi-Fi, where to listen, free memory.
import gc
import sys

DEFAULT_HOST = "0.0.0.0"


def memory_info():
    """(free, allocated) heap bytes where the runtime's gc reports them (MicroPython; the simulated board),
    else (None, None) at once: CPython has no such figures, and collecting there would cost a full pass."""
    if not hasattr(gc, "mem_free"):
        return None, None
    if sys.implementation.name == "micropython":
        gc.collect()  # figures after a collection: garbage not yet collected is not a leak
    return gc.mem_free(), gc.mem_alloc()


def listen_address(config, host, port, default_port):
    """(host, port, advertised host) from dut_config.json, explicit arguments winning; joins Wi-Fi when
    the config names a network (the advertised host is then the board's address; the password is never printed)."""
    advertise = None
    ssid = config.get("wifi_ssid")
    if ssid:
        import network
        import time

        wlan = network.WLAN(network.STA_IF)
        wlan.active(True)
        if not wlan.isconnected():
            wlan.connect(ssid, config.get("wifi_password", ""))
            for _ in range(200):
                if wlan.isconnected():
                    break
                time.sleep_ms(100)
        if not wlan.isconnected():
            raise OSError("Wi-Fi: could not join " + ssid)
        advertise = wlan.ifconfig()[0]
    if host is None:
        host = config.get("host", DEFAULT_HOST)
    if port is None:
        port = int(config.get("port", default_port))
    return host, port, advertise
