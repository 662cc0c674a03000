"""Server-Sent Events on GET /events: `tick` events with ids 0..N-1 and data {"n": i}, then the stream ends."""
from __future__ import annotations

import json

import pytest

from conformance.contract.helpers import get_json, http_get


def parse_sse(body: bytes) -> list[dict[str, str]]:
    """Events of a text/event-stream body (fields name: value, events separated by a blank line)."""
    text = body.decode("utf-8").replace("\r\n", "\n")
    assert text.endswith("\n\n"), f"the stream does not end with a complete event: {text[-40:]!r}"
    events = []
    for block in text.split("\n\n")[:-1]:
        event: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                continue  # comment
            name, sep, value = line.partition(":")
            assert sep, f"line without a field name: {line!r}"
            assert name not in event, f"field {name!r} twice in one event: {block!r}"
            event[name] = value[1:] if value.startswith(" ") else value
        events.append(event)
    return events


def expected_events(count: int) -> list[dict[str, str]]:
    return [{"event": "tick", "id": str(i), "data": json.dumps({"n": i})} for i in range(count)]


def assert_ticks(events: list[dict[str, str]], count: int) -> None:
    assert len(events) == count, f"{len(events)} events, expected {count}"
    for i, event in enumerate(events):
        assert event.get("event") == "tick" and event.get("id") == str(i), event
        assert json.loads(event.get("data", "null")) == {"n": i}, event


def test_events_framing(dut):
    status, headers, body = http_get(dut, "/events?count=5&interval_ms=10")
    assert status == 200
    assert headers.get("content-type", "").startswith("text/event-stream")
    assert_ticks(parse_sse(body), 5)


def test_events_default_count(dut):
    assert_ticks(parse_sse(http_get(dut, "/events?interval_ms=0")[2]), 3)
    assert_ticks(parse_sse(http_get(dut, "/events?count=1000&interval_ms=0")[2]), 1000)


@pytest.mark.parametrize("query", ["count=1001", "count=-1", "count=x", "interval_ms=60001", "interval_ms=" + "9" * 400])
def test_events_out_of_range_is_422(dut, query):
    status, _headers, body = http_get(dut, "/events?" + query)
    assert status == 422, f"GET /events?{query[:40]} answered {status}: {body[:120]!r}"


def test_events_parameters_in_openapi(dut):
    operation = get_json(dut, "/openapi.json")["paths"]["/events"]["get"]
    declared = {p.get("name"): p.get("in") for p in operation.get("parameters", [])}
    assert declared == {"count": "query", "interval_ms": "query"}, f"/events declares {declared}"
