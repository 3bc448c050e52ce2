"""The wire protocol, free of I/O: framing, command parsing, events and their rendering.

Nothing here touches a socket, so the whole grammar is testable with plain tables and property tests.
"""
