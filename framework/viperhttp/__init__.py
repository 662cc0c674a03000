"""ViperHTTP reference implementation: the executable specification of the ViperHTTP API.

Pure Python, standard library only; the same code runs on CPython 3.10+ and MicroPython 1.24+.
"""
from viperhttp.app import IMPLEMENTATION, VERSION, Route, Router, ViperHTTP
from viperhttp.http import (
    HTMLResponse, HTTPException, JSONResponse, PlainTextResponse, Request, Response, StreamingResponse,
)
from viperhttp.websocket import ConnectionManager, WebSocket, WebSocketDisconnect

__version__ = VERSION
