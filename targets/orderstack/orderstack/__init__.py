"""The stub order stack: small aiohttp services that behave like an order chain under stress."""
