"""The small reference-framework app the server-level framework tests talk to over a real socket."""
from __future__ import annotations

from typing import Any

import viperhttp


def echo_app(**options: Any) -> Any:
    """GET /health, POST /echo (the body back) and WebSocket /ws/echo (every message back until the client
    closes); `options` go to viperhttp.ViperHTTP."""
    app = viperhttp.ViperHTTP(**options)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/echo", with_request=True)
    async def echo(request):
        return viperhttp.Response(request.body, media_type="application/octet-stream")

    @app.websocket("/ws/echo")
    async def ws_echo(ws):
        await ws.accept()
        while True:
            message = await ws.receive()
            if message["type"] == "close":
                break
            if message["type"] == "bytes":
                await ws.send_bytes(message["bytes"])
            else:
                await ws.send_text(message["text"])

    return app
