# Response objects. A route may also return a dict or list (JSON), str (JSON string, as FastAPI does),
# bytes (application/octet-stream) or None (`null`).
import json


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
