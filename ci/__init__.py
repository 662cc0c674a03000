"""The local matrix (suites x targets), the report index, and board-farm pipeline helpers."""
