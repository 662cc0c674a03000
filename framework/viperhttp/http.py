# HTTP/1.1, sans-I/O: the request parser (a generator over ByteBuffer) and response heads (chunked framing and
# Server-Sent Events are in streaming.py). The asyncio glue in server.py moves the bytes.
import binascii
import json

from viperhttp.compat import decode_utf8, sha1


# -- incoming bytes for the sans-I/O parsers (this module's and protocol.py's). Parsers are generators: they
# `yield` when they need more bytes and the owner feeds more and resumes them, so a parser never blocks and
# never touches a socket.
class ByteBuffer:
    def __init__(self):
        self._buf = bytearray()
        self._pos = 0
        self.eof = False

    def feed(self, data):
        if self._pos and self._pos >= len(self._buf) >> 1:
            # Compact only when at least half is consumed: amortised O(1) per byte even for huge frames.
            self._buf = self._buf[self._pos:]
            self._pos = 0
        self._buf += data

    def feed_eof(self):
        self.eof = True

    def available(self):
        return len(self._buf) - self._pos

    def take_rest(self):
        """Everything not consumed yet (bytes a client sent right after its request, say)."""
        rest = bytes(self._buf[self._pos:])
        self._buf = bytearray()
        self._pos = 0
        return rest

    def read_exact(self, n):
        while len(self._buf) - self._pos < n:
            if self.eof:
                raise EOFError("closed inside a frame")
            yield
        return self._take(self._pos + n)

    def read_some(self, limit):
        """Between 1 and `limit` bytes: whatever has arrived."""
        while len(self._buf) == self._pos:
            if self.eof:
                raise EOFError("closed inside a frame")
            yield
        return self._take(min(len(self._buf), self._pos + limit))

    def _take(self, end):
        """The unread bytes up to `end`, consumed; once nothing is left unread the storage goes too, so an idle
        connection holds no copy of its last message."""
        data = bytes(memoryview(self._buf)[self._pos:end])  # one copy, not a slice and then a copy
        if end == len(self._buf):
            self._buf = bytearray()
            self._pos = 0
        else:
            self._pos = end
        return data

    def read_line(self, limit):
        """A line without its CRLF; None when none ends within `limit` bytes (a value, not an exception class:
        a class costs every MicroPython import more than this check).

        The same bytes give the same lines however they are split across feeds: the scan resumes where it
        stopped, counted from the unread start (feed() may move that start to 0), and a line of exactly `limit`
        bytes is accepted whether its CR arrives with its LF or before it."""
        scanned = 0  # bytes after the unread start already searched for a CRLF
        while True:
            start = self._pos
            # bytes(...) because MicroPython's bytearray has no find(); headers are small
            end = bytes(self._buf[start + scanned:]).find(b"\r\n")
            if end >= 0:
                end += scanned
                if end > limit:
                    return None
                line = bytes(self._buf[start:start + end])
                self._pos = start + end + 2
                return line
            waiting = len(self._buf) - start
            if waiting > limit + 1 or (waiting == limit + 1 and self._buf[-1] != 0x0D):
                return None  # no CRLF can end this line within the limit any more
            if self.eof:
                raise EOFError("connection closed inside a line")
            scanned = waiting - 1 if waiting else 0  # a CR at the end may pair with the next LF
            yield


# Reason phrases of the statuses a server answers without an error; those of errors (errors.py) load with the first.
SUCCESS_PHRASES = {101: "Switching Protocols", 200: "OK", 201: "Created", 204: "No Content"}


def reason_phrase(status, default=""):
    phrase = SUCCESS_PHRASES.get(status)
    if phrase is None and status >= 400:
        from viperhttp.errors import ERROR_PHRASES

        phrase = ERROR_PHRASES.get(status)
    return phrase or default


class HTTPException(Exception):
    """An HTTP error response: status, detail (JSON body `{"detail": ...}`), extra headers."""

    def __init__(self, status, detail=None, headers=None):
        detail = detail or reason_phrase(status)
        super().__init__(detail)  # MicroPython has no Exception.__init__
        self.status = status
        self.detail = detail or "Error"
        self.headers = headers or {}


class Limits:
    """Parser limits, and deadlines: a client that has started a request and not finished its head (a
    WebSocket opening handshake included) within head_timeout_s, or its body within body_timeout_s of the
    head, is answered 408 and closed."""

    def __init__(self, max_request_line=2048, max_header_line=4096, max_headers=64, max_body=1024 * 1024,
                 head_timeout_s=10, body_timeout_s=30):
        self.max_request_line = max_request_line
        self.max_header_line = max_header_line
        self.max_headers = max_headers
        self.max_body = max_body
        self.head_timeout_s = head_timeout_s
        self.body_timeout_s = body_timeout_s


def unquote(text):
    """Percent-decoding for paths and query strings (`+` is a space only in queries: callers replace it)."""
    if "%" not in text:
        return text
    from viperhttp.fields import percent_decode  # loaded by the first path or query with an escape

    try:
        return percent_decode(text)
    except ValueError as exc:
        raise HTTPException(400, str(exc))


class Request:
    def __init__(self, method, target, version, headers, client=None):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # lower-case name -> value (repeated headers joined with ", ")
        self.client = client  # (host, port) of the peer where known
        path, _, query = target.partition("?")
        self.path = unquote(path)
        self.query_string = query
        self.query_params = params = {}
        for pair in query.split("&"):
            if pair:
                name, _, value = pair.partition("=")
                params[unquote(name.replace("+", " "))] = unquote(value.replace("+", " "))
        self.body = b""
        self.content_length = 0
        self.path_params = {}

    def json(self):
        return json.loads(self.body)

    def text(self):
        return decode_utf8(self.body)

    @property
    def keep_alive(self):
        tokens = header_tokens(self.headers.get("connection", ""))
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


# RFC 9110 5.6.2: a token (a header field name) is visible ASCII characters except these delimiters
_DELIMITERS = '"(),/:;<=>?@[\\]{}'


# Names of the headers an opening handshake carries, which its WebSocket keeps (`ws.headers`) for the connection's
# life: a parsed header name equal to one of these is replaced by it, so connections share one copy. (A name
# that is also an identifier or short literal anywhere in the code, such as "host", is shared by MicroPython
# already.)
SHARED_HEADER_NAMES = ("sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol",
                       "sec-websocket-extensions", "user-agent", "origin")


def parse_request_head(buf, limits, client=None):
    """Generator: a Request without its body (its `content_length` says how much follows), or None at a clean
    end of stream between requests. The head is held to RFC 9110/9112: see docs/framework.md."""
    while True:
        try:
            line = yield from buf.read_line(limits.max_request_line)
        except EOFError:
            if buf.available():
                raise HTTPException(400, "closed inside the request line")
            return None
        if line is None:
            raise HTTPException(414, "request line too long")
        if line:
            break  # RFC 9112 2.2: ignore empty lines before a request line
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HTTPException(400, "malformed request line")
    for byte in parts[1]:
        if byte < 0x21 or byte == 0x7F:
            raise HTTPException(400, "control character in the target")
    try:
        method, target, version = decode_utf8(parts[0]), decode_utf8(parts[1]), decode_utf8(parts[2])
    except ValueError:
        raise HTTPException(400, "request line is not UTF-8")
    if not version.startswith("HTTP/1.") or not method.isalpha() or not method.isupper() or not target:
        raise HTTPException(400, "malformed request line")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HTTPException(505, "unsupported HTTP version")
    headers = {}
    count = 0
    while True:
        try:
            line = yield from buf.read_line(limits.max_header_line)
        except EOFError:
            raise HTTPException(400, "closed inside the headers")
        if line is None:
            raise HTTPException(431, "header line too long")
        if not line:
            break
        count += 1
        if count > limits.max_headers:
            raise HTTPException(431, "too many header fields")
        name, sep, value = line.partition(b":")
        if not sep or not name:
            raise HTTPException(400, "malformed header line")
        for byte in name:  # a token, or the line is malformed
            if byte < 0x21 or byte > 0x7E or chr(byte) in _DELIMITERS:
                raise HTTPException(400, "malformed header line")
        if b"\x00" in value or b"\r" in value or b"\n" in value:
            raise HTTPException(400, "NUL, CR or LF in a header value")
        try:
            name = decode_utf8(name).lower()
            value = decode_utf8(value.strip(b" \t"))
        except ValueError:
            raise HTTPException(400, "header is not UTF-8")
        if name in SHARED_HEADER_NAMES:  # one comparison loop in C for the common header that is none of them
            name = SHARED_HEADER_NAMES[SHARED_HEADER_NAMES.index(name)]  # the one copy every request shares
        if name == "host" and name in headers:
            raise HTTPException(400, "more than one Host header")
        headers[name] = headers[name] + ", " + value if name in headers else value
    if version == "HTTP/1.1" and "host" not in headers:
        raise HTTPException(400, "HTTP/1.1 without a Host header")
    request = Request(method, target, version, headers, client)
    if "transfer-encoding" in headers:
        raise HTTPException(501, "Transfer-Encoding not supported")
    length = headers.get("content-length")
    if length is not None:
        from viperhttp.fields import content_length  # loaded by the first request with a body

        try:
            request.content_length = content_length(length)
        except ValueError as exc:
            raise HTTPException(400, str(exc))
        if request.content_length > limits.max_body:
            raise HTTPException(413, "body over %d bytes" % limits.max_body)
    return request


def read_body(buf, request):
    """Generator: reads the request's body (its `content_length` bytes) into `request.body`."""
    if request.content_length:
        try:
            request.body = yield from buf.read_exact(request.content_length)
        except EOFError:
            raise HTTPException(400, "closed inside the body")


def response_head(status, headers):
    """Status line and headers; `headers` is a list of (name, value)."""
    lines = ["HTTP/1.1 %d %s" % (status, reason_phrase(status, "Status"))]
    for name, value in headers:
        lines.append("%s: %s" % (name, value))
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- response objects. A route may also return a dict or list (JSON), str (JSON string, as FastAPI does),
# bytes (application/octet-stream) or None (`null`). -------------------------------------------------------
class Response:
    media_type = "text/plain; charset=utf-8"

    def __init__(self, content=b"", status_code=200, headers=None, media_type=None):
        self.status_code = status_code
        self.headers = dict(headers or {})
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)

    def render(self, content):
        if isinstance(content, str):
            return content.encode("utf-8")
        return bytes(content)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content):
        return json.dumps(content).encode("utf-8")


class HTMLResponse(Response):
    media_type = "text/html; charset=utf-8"


class PlainTextResponse(Response):
    media_type = "text/plain; charset=utf-8"


class StreamingResponse:
    """A body produced piece by piece from an (async) generator, sent with chunked transfer encoding.
    With media_type text/event-stream, dict items become Server-Sent Events (event/data/id/retry)."""

    def __init__(self, content, media_type="application/octet-stream", status_code=200, headers=None):
        self.content = content
        self.media_type = media_type
        self.status_code = status_code
        self.headers = dict(headers or {})
        if media_type.startswith("text/event-stream"):
            self.headers.setdefault("Cache-Control", "no-cache")


def to_response(result):
    if isinstance(result, (Response, StreamingResponse)):
        return result
    if isinstance(result, (bytes, bytearray)):
        return Response(result, media_type="application/octet-stream")
    return JSONResponse(result)


# -- the WebSocket opening handshake (RFC 6455 section 4.2): a parsed request in, a verdict out ----------------
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSION = "13"


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (both str)."""
    digest = sha1(key.encode() + GUID).digest()
    return binascii.b2a_base64(digest).decode().strip()


def header_tokens(value, lower=True):
    """The comma-separated tokens of a header value (RFC 9110 5.6.1), stripped, empty ones dropped; lowercased
    unless they are case-sensitive (sub-protocol names)."""
    tokens = []
    for token in value.split(","):
        token = token.strip()
        if token:
            tokens.append(token.lower() if lower else token)
    return tokens


def is_upgrade_request(request):
    return "websocket" in header_tokens(request.headers.get("upgrade", ""))


def check_request(request):
    """Raise HTTPException with the status the request earns, or return the client's key."""
    headers = request.headers
    if request.method != "GET":
        raise HTTPException(405, "WebSocket handshake needs GET", {"Allow": "GET"})
    if request.version != "HTTP/1.1":
        raise HTTPException(400, "WebSocket needs HTTP/1.1")
    if "websocket" not in header_tokens(headers.get("upgrade", "")):
        raise HTTPException(426, "this path is WebSocket only",
                        {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": SUPPORTED_VERSION})
    if "upgrade" not in header_tokens(headers.get("connection", "")):
        raise HTTPException(400, "no upgrade token in Connection")
    if headers.get("sec-websocket-version", "").strip() != SUPPORTED_VERSION:
        raise HTTPException(426, "unsupported WebSocket version", {"Sec-WebSocket-Version": SUPPORTED_VERSION})
    key = headers.get("sec-websocket-key", "").strip()
    try:
        # bytes, not str: micropython-lib's pure-Python binascii (the WebAssembly port's) only takes bytes;
        # a non-ASCII key fails to encode with a ValueError, as CPython's a2b_base64 fails on it with str
        decoded = binascii.a2b_base64(key.encode("ascii")) if key else b""
    except ValueError:  # binascii.Error and UnicodeEncodeError are ValueErrors; MicroPython raises ValueError
        decoded = b""
    if len(decoded) != 16 or len(key) != 24:
        raise HTTPException(400, "Sec-WebSocket-Key not 16 bytes")
    return key


def choose_subprotocol(request, supported):
    """The first protocol in the client's offer that the route supports, else None."""
    if not supported:
        return None
    for offered in header_tokens(request.headers.get("sec-websocket-protocol", ""), lower=False):
        if offered in supported:
            return offered
    return None


def accept_response(key, subprotocol, server_header):
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept_key(key)),
               ("Server", server_header)]
    if subprotocol:
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    return response_head(101, headers)
