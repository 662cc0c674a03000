# Path templates with typed parameters: /items/{item_id:int}, /files/{rest:path}, /users/{name}. Imported by the
# first route with a parameter: an app whose paths are all literal never loads this module.
# Matching walks segments instead of using regular expressions: MicroPython's `re` has no named groups.
CONVERTERS = {"str": str, "int": int, "float": float, "path": str}


def parse_template(path):
    """[(literal, None) | (name, converter)] for each segment of a path template (which starts with "/")."""
    segments = []
    parts = path.split("/")[1:]
    for index, part in enumerate(parts):
        if part.startswith("{") and part.endswith("}"):
            name, _, converter = part[1:-1].partition(":")
            converter = converter or "str"
            if converter not in CONVERTERS:
                raise ValueError("unknown path converter %r in %r" % (converter, path))
            if converter == "path" and index != len(parts) - 1:
                raise ValueError("a {name:path} parameter must be the last segment: %r" % path)
            segments.append((name, converter))
        else:
            segments.append((part, None))
    return segments


def match_path(segments, path):
    """Path parameters converted to their types, or None when the path does not match."""
    parts = path.split("/")[1:]
    params = {}
    for index, (text, converter) in enumerate(segments):
        if converter == "path":
            rest = "/".join(parts[index:])
            if not rest:
                return None
            params[text] = rest
            return params
        if index >= len(parts):
            return None
        part = parts[index]
        if converter is None:
            if part != text:
                return None
            continue
        if not part:
            return None
        try:
            params[text] = CONVERTERS[converter](part)
        except ValueError:
            return None
    if len(parts) != len(segments):
        return None
    return params
