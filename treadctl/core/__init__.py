"""Pure logic: no I/O, no asyncio sleeps, time comes from an injected clock."""
