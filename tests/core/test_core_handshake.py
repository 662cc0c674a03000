"""The WebSocket opening handshake (RFC 6455 4.2), sans-I/O. Runs on CPython and inside the MicroPython VM
(where hashlib has no SHA-1 and binascii is micropython-lib's)."""
import unittest

from viperhttp.http import (
    accept_key,
    accept_response,
    check_request,
    choose_subprotocol,
)
from viperhttp.http import HTTPException, Request

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example


def upgrade_request(method="GET", version="HTTP/1.1", **overrides):
    headers = {"host": "dut", "upgrade": "websocket", "connection": "Upgrade", "sec-websocket-key": KEY,
               "sec-websocket-version": "13"}
    for name, value in overrides.items():
        name = name.replace("_", "-")
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    return Request(method, "/ws/echo", version, headers)


class Handshake(unittest.TestCase):
    def test_accept_key_of_the_rfc_example(self):
        self.assertEqual(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")

    def test_a_valid_request_yields_its_key(self):
        self.assertEqual(check_request(upgrade_request(connection="keep-alive, Upgrade")), KEY)

    def test_each_defect_earns_its_status(self):
        cases = [
            ("POST", upgrade_request(method="POST"), 405),
            ("HTTP/1.0", upgrade_request(version="HTTP/1.0"), 400),
            ("no upgrade header", upgrade_request(upgrade=None), 426),
            ("no upgrade token in Connection", upgrade_request(connection="keep-alive"), 400),
            ("version 8", upgrade_request(sec_websocket_version="8"), 426),
            ("no key", upgrade_request(sec_websocket_key=None), 400),
            ("key of 15 bytes", upgrade_request(sec_websocket_key="AAAAAAAAAAAAAAAAAAAA"), 400),
            ("key not base64", upgrade_request(sec_websocket_key="!" * 24), 400),
            ("key not ASCII", upgrade_request(sec_websocket_key="\u00e9" * 24), 400),
        ]
        for name, request, status in cases:
            with self.assertRaises(HTTPException, msg=name) as caught:
                check_request(request)
            self.assertEqual(caught.exception.status, status, name)

    def test_subprotocol_is_the_first_offered_that_the_route_supports(self):
        request = upgrade_request(sec_websocket_protocol="v2, mqtt, mqttv5")
        self.assertEqual(choose_subprotocol(request, ["mqttv5", "mqtt"]), "mqtt")
        self.assertIsNone(choose_subprotocol(request, ["other"]))
        self.assertIsNone(choose_subprotocol(upgrade_request(), ["mqtt"]))

    def test_accept_response_head(self):
        head = accept_response(KEY, "mqtt", "ViperHTTP-reference/0.1.0")
        self.assertTrue(head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"))
        self.assertIn(b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", head)
        self.assertIn(b"\r\nSec-WebSocket-Protocol: mqtt\r\n", head)
        self.assertTrue(head.endswith(b"\r\n\r\n"))
