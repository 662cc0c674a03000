# HTTP field values a request may never carry, parsed by code loaded with the first that does: a path or query
# with percent-escapes, a Content-Length (a request with a body). A board serving neither never holds this module.
# Errors are ValueErrors whose text is the detail: http.py answers them 400.
from viperhttp.compat import decode_utf8


def percent_decode(text):
    """`text` with its %XX escapes decoded; ValueError when the result is not UTF-8."""
    raw = text.encode()
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        if raw[i] == 0x25 and i + 2 < n:
            try:
                out.append(int(raw[i + 1:i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    try:
        return decode_utf8(bytes(out))
    except ValueError:
        raise ValueError("percent-encoding is not UTF-8")


def content_length(value):
    """The body length a Content-Length value gives: ASCII digits only; a list (repeated fields) must agree
    (ValueError otherwise)."""
    length = None
    for part in value.split(","):
        part = part.strip()
        if not part:
            raise ValueError("Content-Length is empty")
        if len(part) > 18:
            raise ValueError("Content-Length too long")
        for char in part:
            if char < "0" or char > "9":
                raise ValueError("Content-Length is not digits")
        if length is not None and int(part) != length:
            raise ValueError("Content-Length values differ")
        length = int(part)
    return length
