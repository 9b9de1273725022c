"""The HTTP API: aiohttp application, middlewares and one module per route family."""
