# The OpenAPI document and the /docs page. Imported by the first request for either: a board that is never asked
# for its docs never loads this module.
import json

SCHEMA_TYPES = {"str": "string", "int": "integer", "float": "number", "path": "string"}  # path converter -> type


def openapi_path(route):
    """The route's path as OpenAPI writes it: parameters without their converters."""
    if route.segments is None:
        return route.path
    return "/" + "/".join(("{%s}" % text) if converter else text for text, converter in route.segments)


def openapi_document(app):
    paths = {}
    websockets = []
    for route in app.routes:
        if not route.include_in_schema:
            continue
        name = getattr(route.endpoint, "__name__", "handler")
        if route.websocket:
            websockets.append({
                "path": route.path,
                "summary": route.summary or name.replace("_", " "),
                "description": route.description or "",
                "tags": route.tags,
                "operationId": route.operation_id or name,
                "protocols": route.protocols,
            })
            continue
        parameters = [
            {"name": text, "in": "path", "required": True, "schema": {"type": SCHEMA_TYPES[converter]}}
            for text, converter in route.segments or () if converter
        ]
        item = paths.setdefault(openapi_path(route), {})
        for method in route.methods:
            item[method.lower()] = {
                "summary": route.summary or name.replace("_", " "),
                "description": route.description or "",
                "operationId": route.operation_id or "%s_%s" % (name, method.lower()),
                "tags": route.tags,
                "parameters": parameters,
                "responses": {"200": {"description": "Successful Response"}},
            }
    document = {
        "openapi": "3.0.3",
        "info": {"title": app.title, "version": app.version, "description": app.description},
        "paths": paths,
    }
    if app.include_websocket_docs:
        document["x-websocket"] = websockets
    return document


def docs_page(app):
    return _DOCS_PAGE % (app.title, app.title, app.openapi_url, json.dumps(app.openapi()))


_DOCS_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>%s - API docs</title>
<style>body{font-family:sans-serif;margin:2em}code{background:#eee;padding:0 .3em}li{margin:.3em 0}</style>
</head><body><h1>%s</h1><p>OpenAPI document: <a href="%s">openapi.json</a></p><ul id="ops"></ul>
<script>
var doc = %s, ops = document.getElementById("ops");
function add(text){var li=document.createElement("li");li.textContent=text;ops.appendChild(li);}
for (var p in doc.paths) for (var m in doc.paths[p]) add(m.toUpperCase()+" "+p+"  "+doc.paths[p][m].summary);
(doc["x-websocket"]||[]).forEach(function(w){add("WEBSOCKET "+w.path+"  "+w.summary+(w.protocols.length?"  ["+w.protocols.join(", ")+"]":""));});
</script></body></html>"""
