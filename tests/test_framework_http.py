"""HTTP/1.1 side of the reference framework over real sockets: handshake verdicts, parser limits, routing,
responses, SSE, OpenAPI."""
from __future__ import annotations

import json
import socket

import pytest

import viperhttp
from conftest import serve_in_thread

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def exchange(port: int, request: bytes, read_all: bool = True) -> bytes:
    """Send raw bytes, return what the server answered until it closed (or 2 s of silence)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        sock.settimeout(2)
        chunks = []
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
                if not read_all:
                    break
        except socket.timeout:
            pass
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def head_and_body(response: bytes) -> tuple[dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, body


def upgrade(path: str = "/ws/echo", **overrides: str | None) -> bytes:
    headers = {"Host": "x", "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": KEY,
               "Sec-WebSocket-Version": "13"}
    method = overrides.pop("method", None) or "GET"
    version = overrides.pop("version", None) or "HTTP/1.1"
    headers.update({name.replace("_", "-"): value for name, value in overrides.items()})
    lines = [f"{method} {path} {version}"] + [f"{k}: {v}" for k, v in headers.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- opening handshake: each bad-input class and its status -------------------------------------------------
HANDSHAKE_CASES = {
    "valid, mixed-case tokens": (upgrade(Upgrade="WebSocket", Connection="keep-alive, UPGRADE"), 101),
    "not GET": (upgrade(method="POST"), 405),
    "HTTP/1.0": (upgrade(version="HTTP/1.0"), 400),
    "no Upgrade header": (upgrade(Upgrade=None), 426),
    "Upgrade not websocket": (upgrade(Upgrade="h2c"), 426),
    "Connection without upgrade": (upgrade(Connection="keep-alive"), 400),
    "version 8": (upgrade(Sec_WebSocket_Version="8"), 426),
    "no version": (upgrade(Sec_WebSocket_Version=None), 426),
    "no key": (upgrade(Sec_WebSocket_Key=None), 400),
    "key not base64": (upgrade(Sec_WebSocket_Key="not-base64-at-all-!!!!!!"), 400),
    "key of 15 bytes": (upgrade(Sec_WebSocket_Key="AAAAAAAAAAAAAAAAAAAA"), 400),
    "unknown WebSocket path": (upgrade(path="/ws/nowhere"), 404),
}


@pytest.mark.parametrize("name", list(HANDSHAKE_CASES))
def test_handshake_verdicts(dut_port: int, name: str) -> None:
    request, status = HANDSHAKE_CASES[name]
    response = exchange(dut_port, request, read_all=False)
    assert status_of(response) == status, response[:200]


def test_handshake_accept_value_and_server_header(dut_port: int) -> None:
    headers, _ = head_and_body(exchange(dut_port, upgrade(), read_all=False))
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3's example
    assert headers["server"] == "ViperHTTP-reference/0.1.0"
    assert "sec-websocket-extensions" not in headers  # permessage-deflate offers are declined


def test_version_mismatch_names_the_supported_version(dut_port: int) -> None:
    headers, _ = head_and_body(exchange(dut_port, upgrade(Sec_WebSocket_Version="8"), read_all=False))
    assert headers["sec-websocket-version"] == "13"


def test_extension_offer_is_declined(dut_port: int) -> None:
    headers, _ = head_and_body(exchange(dut_port, upgrade(Sec_WebSocket_Extensions="permessage-deflate"), read_all=False))
    assert "sec-websocket-extensions" not in headers


@pytest.mark.parametrize("offer, chosen", [
    ("mqtt", "mqtt"), ("mqttv5", "mqttv5"), ("mqttv5, mqtt", "mqttv5"), ("mqtt, mqttv5", "mqtt"),
    ("foo, mqttv5", "mqttv5"), ("foo, bar", None), ("MQTT", None),
])
def test_subprotocol_is_the_first_offered_that_the_route_supports(dut_port: int, offer: str, chosen: str | None) -> None:
    headers, _ = head_and_body(exchange(dut_port, upgrade("/ws/mqtt", Sec_WebSocket_Protocol=offer), read_all=False))
    assert headers.get("sec-websocket-protocol") == chosen


# -- request parsing limits ---------------------------------------------------------------------------------
PARSER_CASES = {
    "header line over the limit": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", 431),
    "too many headers": (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(70)) + b"\r\n", 431),
    "request line over the limit": (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "malformed request line": (b"GET /health\r\n\r\n", 400),
    "lower-case method": (b"get /health HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "header without colon": (b"GET /health HTTP/1.1\r\nHost: x\r\nBroken header\r\n\r\n", 400),
    "space before colon": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A : x\r\n\r\n", 400),
    "HTTP/2.0": (b"GET /health HTTP/2.0\r\n\r\n", 400),
    "header value with a UTF-8 surrogate": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: \xed\xa0\x80\r\n\r\n", 400),
    "path with invalid percent-encoded UTF-8": (b"GET /files/%ff HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "HTTP/1.2": (b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n", 505),
    "Content-Length not a number": (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n", 400),
    "body over the limit": (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", 413),
    "chunked request body": (b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    "Content-Length with a sign": (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400),
    "Content-Length with an underscore": (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5_0\r\n\r\n", 400),
    "Content-Length in non-ASCII digits": ("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: \u0665\r\n\r\n".encode(), 400),
    "Content-Length negative": (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    "two Content-Length values that differ": (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                              b"Content-Length: 6\r\n\r\nhello!", 400),
    "two Content-Length values that agree (parsed: the route answers)": (
        b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 405),
    "Content-Length list that differs": (b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!", 400),
    "header name with a tab": (b"GET /health HTTP/1.1\r\nHost: x\r\nX\tA: 1\r\n\r\n", 400),
    "header name with NUL": (b"GET /health HTTP/1.1\r\nHost: x\r\nX\x00A: 1\r\n\r\n", 400),
    "header name not ASCII": ("GET /health HTTP/1.1\r\nHost: x\r\nX-\u00e9: 1\r\n\r\n".encode(), 400),
    "header name with a delimiter": (b"GET /health HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", 400),
    "obsolete line folding": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
    "header value with NUL": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    "header value with a bare CR": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    "header value with a bare LF": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\nb\r\n\r\n", 400),
    "control character in the target": (b"GET /hea\x01lth HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "HTTP/1.1 without Host": (b"GET /health HTTP/1.1\r\n\r\n", 400),
    "two Host headers": (b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "unknown path": (b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    "wrong method": (b"DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n", 405),
}


@pytest.mark.parametrize("name", list(PARSER_CASES))
def test_bad_requests_get_their_status_as_json(dut_port: int, name: str) -> None:
    request, status = PARSER_CASES[name]
    response = exchange(dut_port, request, read_all=False)
    assert status_of(response) == status, response[:200]
    headers, body = head_and_body(response)
    assert headers["content-type"] == "application/json"
    assert "detail" in json.loads(body)


def test_405_lists_allowed_methods(dut_port: int) -> None:
    headers, _ = head_and_body(exchange(dut_port, b"POST /health HTTP/1.1\r\nHost: x\r\n\r\n", read_all=False))
    assert headers["allow"] == "GET, HEAD"


def test_keep_alive_serves_pipelined_requests_and_head_has_no_body(dut_port: int) -> None:
    response = exchange(dut_port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nHEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
                                  b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert response.count(b"HTTP/1.1 200 OK") == 3
    assert response.count(b'"status": "ok"') == 2


def test_http10_closes_after_the_response(dut_port: int) -> None:
    response = exchange(dut_port, b"GET /health HTTP/1.0\r\n\r\n")
    assert status_of(response) == 200 and b"connection: close" in response.lower()


# -- application API ----------------------------------------------------------------------------------------
@pytest.fixture
def api_port():
    app = viperhttp.ViperHTTP(title="T", version="9", include_websocket_docs=False)
    router = viperhttp.Router(prefix="/v1", tags=["items"])

    @router.get("/items/{item_id:int}")
    async def get_item(item_id):
        return {"item_id": item_id, "type": type(item_id).__name__}

    @router.put("/items/{item_id:int}", with_request=True)
    def put_item(request, item_id):  # a plain function works too
        return viperhttp.JSONResponse({"id": item_id, "body": request.json()}, status_code=201)

    @router.delete("/items/{item_id:int}")
    async def delete_item(item_id):
        raise viperhttp.HTTPException(404, "no item %d" % item_id)

    @app.post("/echo", with_request=True)
    async def echo(request):
        return viperhttp.Response(request.body, media_type="application/octet-stream")

    @app.get("/files/{rest:path}")
    async def files(rest):
        return rest

    @app.get("/boom")
    async def boom():
        raise RuntimeError("bug")

    @app.get("/stream")
    async def stream():
        return viperhttp.StreamingResponse(iter([b"ab", "cd", b""]), media_type="text/plain")

    @app.websocket("/ws/hidden")
    async def hidden(ws):
        await ws.accept()

    app.include_router(router)
    with serve_in_thread(app) as port:
        yield port


def get(port: int, path: str, method: str = "GET", body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
    response = exchange(port, request)
    headers, payload = head_and_body(response)
    return status_of(response), headers, payload


def test_typed_path_parameters_and_router_prefix(api_port: int) -> None:
    assert json.loads(get(api_port, "/v1/items/42")[2]) == {"item_id": 42, "type": "int"}
    assert get(api_port, "/v1/items/forty-two")[0] == 404  # not an int: no route matches


def test_request_body_json_and_status_code(api_port: int) -> None:
    status, _, body = get(api_port, "/v1/items/7", "PUT", b'{"a": [1, 2]}')
    assert status == 201 and json.loads(body) == {"id": 7, "body": {"a": [1, 2]}}


def test_http_exception_and_handler_crash(api_port: int) -> None:
    assert get(api_port, "/v1/items/3", "DELETE")[:3:2] == (404, b'{"detail": "no item 3"}')
    status, _, body = get(api_port, "/boom")
    assert status == 500 and json.loads(body) == {"detail": "Internal Server Error"}


def test_path_converter_and_str_result_as_json(api_port: int) -> None:
    assert json.loads(get(api_port, "/files/a/b%20c.txt")[2]) == "a/b c.txt"


def test_post_body_round_trip(api_port: int) -> None:
    payload = bytes(range(256)) * 10
    assert get(api_port, "/echo", "POST", payload)[2] == payload


def test_streaming_response_is_chunked(api_port: int) -> None:
    status, headers, body = get(api_port, "/stream")
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert body == b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"


def test_openapi_document_without_websocket_docs(api_port: int) -> None:
    doc = json.loads(get(api_port, "/openapi.json")[2])
    assert doc["openapi"].startswith("3.0") and doc["info"]["title"] == "T" and doc["info"]["version"] == "9"
    operation = doc["paths"]["/v1/items/{item_id}"]["get"]
    assert operation["tags"] == ["items"]
    assert operation["parameters"] == [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    assert "x-websocket" not in doc and "/ws/hidden" not in json.dumps(doc)


def test_openapi_of_the_dut_lists_websocket_routes(dut_port: int) -> None:
    status, _, body = get(dut_port, "/openapi.json")
    entries = {entry["path"]: entry for entry in json.loads(body)["x-websocket"]}
    assert set(entries) == {"/ws/echo", "/ws/autobahn", "/ws/mqtt", "/ws/chat", "/ws/rooms", "/ws/inspect"}
    assert entries["/ws/mqtt"]["protocols"] == ["mqtt", "mqttv5"]
    assert {"path", "summary", "description", "tags", "operationId", "protocols"} <= set(entries["/ws/echo"])
    status, headers, page = get(dut_port, "/docs")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"/ws/mqtt" in page


def test_sse_wire_format(dut_port: int) -> None:
    status, headers, body = get(dut_port, "/events?count=3&interval_ms=0")
    assert status == 200 and headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    # de-chunk
    events = b""
    rest = body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        events += rest[:size]
        rest = rest[size + 2:]
    assert events.decode() == "".join(f'event: tick\nid: {i}\ndata: {{"n": {i}}}\n\n' for i in range(3))


def test_sse_formatting_of_every_field() -> None:
    from viperhttp.streaming import format_sse

    assert format_sse({"event": "e", "id": 5, "retry": 3000, "data": "a\nb"}) == b"event: e\nid: 5\nretry: 3000\ndata: a\ndata: b\n\n"
    assert format_sse({"data": {"k": 1}}) == b'data: {"k": 1}\n\n'
    assert format_sse("plain") == b"data: plain\n\n"
