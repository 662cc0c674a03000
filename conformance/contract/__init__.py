"""The ViperHTTP API contract suite (pytest): `vhil contract --target T` or `pytest conformance/contract --target T`."""
