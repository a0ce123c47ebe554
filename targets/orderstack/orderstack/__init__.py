"""The stub order stack: small asyncio services that behave like an order chain under stress."""
