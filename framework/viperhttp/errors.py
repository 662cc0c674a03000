# Reason phrases of the error statuses the framework answers. Imported by the first error response or
# HTTPException without a detail: a board that never answers an error never loads this module.
ERROR_PHRASES = {
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    411: "Length Required", 413: "Content Too Large", 414: "URI Too Long", 422: "Unprocessable Content",
    426: "Upgrade Required", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}
