"""ViperHTTP reference implementation: the executable specification of the ViperHTTP API.

Pure Python, standard library only; the same code runs on CPython 3.10+ and MicroPython 1.24+.
"""
from viperhttp.app import IMPLEMENTATION, VERSION, Route, Router, ViperHTTP
from viperhttp.http import HTTPException, Request
from viperhttp.manager import ConnectionManager
from viperhttp.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from viperhttp.websocket import WebSocket, WebSocketDisconnect

__version__ = VERSION
