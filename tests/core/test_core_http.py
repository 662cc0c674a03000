"""HTTP/1.1 request parsing (a generator over ByteBuffer), response heads and chunked framing, sans-I/O. Runs
on CPython and inside the MicroPython VM."""
import unittest

from viperhttp.http import ByteBuffer, HTTPException, Limits, parse_request_head, read_body, response_head
from viperhttp.streaming import encode_chunk


def _request(buf, limits):
    # the head, then the body, as the server reads them (tests/sansio.py's parse_request, which the VM cannot import)
    request = yield from parse_request_head(buf, limits)
    if request is not None:
        yield from read_body(buf, request)
    return request


def parse(data, limits=None, pieces=1):
    """The parser's result for `data` arriving in `pieces` parts, then the end of stream."""
    buf = ByteBuffer()
    parser = _request(buf, limits or Limits())
    step = max(1, len(data) // pieces)
    try:
        next(parser)
        for start in range(0, len(data), step):
            buf.feed(data[start:start + step])
            next(parser)
        buf.feed_eof()
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("the parser wants more after the end of stream")


class RequestParser(unittest.TestCase):
    def test_get_with_headers_and_query(self):
        request = parse(b"GET /a%20b/c?x=1&y=two+words&z=%C3%A9 HTTP/1.1\r\nHost: dut\r\nX-Multi: 1\r\n"
                        b"x-multi: 2\r\n\r\n")
        self.assertEqual((request.method, request.path, request.version), ("GET", "/a b/c", "HTTP/1.1"))
        self.assertEqual(request.query_params, {"x": "1", "y": "two words", "z": "\u00e9"})
        self.assertEqual(request.headers["x-multi"], "1, 2")
        self.assertTrue(request.keep_alive)

    def test_body_by_content_length_arriving_byte_by_byte(self):
        data = b"POST /items HTTP/1.1\r\nHost: dut\r\nContent-Length: 11\r\n\r\nhello world"
        request = parse(data, pieces=len(data))
        self.assertEqual(request.body, b"hello world")

    def test_clean_end_of_stream_between_requests_is_none(self):
        self.assertIsNone(parse(b""))
        self.assertIsNone(parse(b"\r\n"))

    def test_keep_alive_follows_version_and_connection(self):
        self.assertFalse(parse(b"GET / HTTP/1.1\r\nHost: dut\r\nConnection: close\r\n\r\n").keep_alive)
        self.assertFalse(parse(b"GET / HTTP/1.0\r\n\r\n").keep_alive)
        self.assertTrue(parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive)

    def test_each_malformed_request_earns_its_status(self):
        small = Limits(max_request_line=64, max_header_line=64, max_headers=3, max_body=16)
        cases = [
            ("request line too long", b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n\r\n", 414),
            ("header line too long", b"GET / HTTP/1.1\r\nX: " + b"a" * 100 + b"\r\n\r\n", 431),
            ("too many headers", b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431),
            ("body too large", b"POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 17\r\n\r\n" + b"b" * 17, 413),
            ("two words", b"GET /\r\n\r\n", 400),
            ("lower-case method", b"get / HTTP/1.1\r\n\r\n", 400),
            ("HTTP/2.0", b"GET / HTTP/2.0\r\n\r\n", 400),
            ("HTTP/1.2", b"GET / HTTP/1.2\r\n\r\n", 505),
            ("header without colon", b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
            ("space before colon", b"GET / HTTP/1.1\r\nX-A : 1\r\n\r\n", 400),
            ("header with a UTF-16 surrogate", b"GET / HTTP/1.1\r\nX-A: \xed\xa0\x80\r\n\r\n", 400),
            ("request line not UTF-8", b"GET /\xff HTTP/1.1\r\n\r\n", 400),
            ("percent-encoding not UTF-8", b"GET /%ff HTTP/1.1\r\n\r\n", 400),
            ("chunked body", b"POST / HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            ("Content-Length not a number", b"POST / HTTP/1.1\r\nHost: d\r\nContent-Length: x\r\n\r\n", 400),
            ("negative Content-Length", b"POST / HTTP/1.1\r\nHost: d\r\nContent-Length: -1\r\n\r\n", 400),
            ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", 400),
            ("closed inside the headers", b"GET / HTTP/1.1\r\nHost: d", 400),
            ("closed inside the body", b"POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 9\r\n\r\nabc", 400),
        ]
        for name, data, status in cases:
            with self.assertRaises(HTTPException, msg=name) as caught:
                parse(data, small)
            self.assertEqual(caught.exception.status, status, name)


class ResponseFraming(unittest.TestCase):
    def test_response_head(self):
        head = response_head(404, [("Content-Type", "application/json"), ("Content-Length", "2")])
        self.assertEqual(head, b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n")

    def test_chunks(self):
        self.assertEqual(encode_chunk(b"x" * 26), b"1a\r\n" + b"x" * 26 + b"\r\n")
        self.assertEqual(encode_chunk(b""), b"")  # an empty chunk would end the body
