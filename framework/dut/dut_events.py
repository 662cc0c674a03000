# The DUT app's /events stream (docs/dut-app.md), imported by the first request for it: a board no suite asks for
# events never holds this code. Written against the guide alone and `runtime`, as main.py is
# (tests/test_dut_app_api.py checks both).
import asyncio
import json

import viperhttp


class TickEvents:
    """`count` SSE events, `interval_ms` apart. A class, not an async generator: MicroPython has none."""

    def __init__(self, count, interval_ms):
        self.n = 0
        self.count = count
        self.interval_ms = interval_ms

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.n >= self.count:
            raise StopAsyncIteration
        if self.n:
            await asyncio.sleep(self.interval_ms / 1000)
        self.n += 1
        return {"event": "tick", "id": str(self.n - 1), "data": json.dumps({"n": self.n - 1})}


def _bounded_int(name, text, default, upper):
    """The integer in `text` (None: `default`) within 0..upper; ValueError naming the parameter otherwise."""
    if text is None:
        return default
    text = str(text)
    # the digit count first: a 400-digit value is rejected before it becomes a big integer
    if not text.isdigit() or len(text) > len(str(upper)) or int(text) > upper:
        raise ValueError("%s must be an integer from 0 to %d" % (name, upper))
    return int(text)


def event_stream(runtime, count, interval_ms, max_events, max_interval_ms):
    """The response to GET /events: `count` ticks (default 3), `interval_ms` apart (default 100); 422 naming
    the parameter when one is not an integer within its bound."""
    try:
        count = _bounded_int("count", count, 3, max_events)
        interval_ms = _bounded_int("interval_ms", interval_ms, 100, max_interval_ms)
    except ValueError as exc:
        raise runtime.http_error(422, str(exc))
    return viperhttp.StreamingResponse(TickEvents(count, interval_ms), media_type="text/event-stream")
