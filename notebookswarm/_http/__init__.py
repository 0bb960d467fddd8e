"""The HTTP wire under the user clients: pooled connections, the parser, cookies (worker side)."""
