# The reference adapter's completion of the OpenAPI document (runtime_reference.py), imported by the first
# request for the document: a board no client asks for it never holds this code.


def declare_query(document, path, params):
    """`document` with the query parameters `params` ((name, largest value) pairs) of GET `path` declared: the
    bounds, the 422 and the 414 a long query gets, so a schema-valid request is never refused and the refusal is
    documented."""
    for operation in document["paths"].get(path, {}).values():
        operation["parameters"] = operation["parameters"] + [
            {"name": name, "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 0, "maximum": largest}} for name, largest in params]
        operation["responses"]["422"] = {"description": "a query parameter is out of range"}
        operation["responses"]["414"] = {"description": "the request line (a long query) is over the limit"}
    return document
