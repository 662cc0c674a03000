# The WebSocket opening handshake (RFC 6455 section 4.2), sans-I/O: a parsed request in, a verdict out.
import binascii

from viperhttp.compat import sha1
from viperhttp.http import HTTPException

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSION = "13"


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (both str)."""
    digest = sha1(key.encode() + GUID).digest()
    return binascii.b2a_base64(digest).decode().strip()


def header_tokens(value):
    return [token.strip().lower() for token in value.split(",") if token.strip()]


def is_upgrade_request(request):
    return "websocket" in header_tokens(request.headers.get("upgrade", ""))


def check_request(request):
    """Raise HTTPException with the status the request earns, or return the client's key."""
    headers = request.headers
    if request.method != "GET":
        raise HTTPException(405, "WebSocket handshake must use GET", {"Allow": "GET"})
    if request.version != "HTTP/1.1":
        raise HTTPException(400, "WebSocket handshake needs HTTP/1.1")
    if "websocket" not in header_tokens(headers.get("upgrade", "")):
        raise HTTPException(426, "this endpoint speaks WebSocket only",
                        {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": SUPPORTED_VERSION})
    if "upgrade" not in header_tokens(headers.get("connection", "")):
        raise HTTPException(400, "Connection header lacks the upgrade token")
    if headers.get("sec-websocket-version", "").strip() != SUPPORTED_VERSION:
        raise HTTPException(426, "unsupported Sec-WebSocket-Version", {"Sec-WebSocket-Version": SUPPORTED_VERSION})
    key = headers.get("sec-websocket-key", "").strip()
    try:
        # bytes, not str: micropython-lib's pure-Python binascii (the WebAssembly port's) only takes bytes;
        # a non-ASCII key fails to encode with a ValueError, as CPython's a2b_base64 fails on it with str
        decoded = binascii.a2b_base64(key.encode("ascii")) if key else b""
    except ValueError:  # binascii.Error and UnicodeEncodeError are ValueErrors; MicroPython raises ValueError
        decoded = b""
    if len(decoded) != 16 or len(key) != 24:
        raise HTTPException(400, "Sec-WebSocket-Key must be 16 bytes in base64")
    return key


def choose_subprotocol(request, supported):
    """The first protocol in the client's offer that the route supports, else None."""
    if not supported:
        return None
    for offered in request.headers.get("sec-websocket-protocol", "").split(","):
        offered = offered.strip()  # sub-protocol names are case-sensitive tokens
        if offered in supported:
            return offered
    return None


def accept_response(key, subprotocol, server_header):
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Accept: " + accept_key(key),
        "Server: " + server_header,
    ]
    if subprotocol:
        lines.append("Sec-WebSocket-Protocol: " + subprotocol)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
