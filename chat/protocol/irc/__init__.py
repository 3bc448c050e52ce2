"""The IRC door: IRC lines to the same commands as the native protocol, events to IRC lines (docs/IRC.md)."""

from chat.protocol.irc.codec import CAPABILITIES, IrcCodec

__all__ = ["CAPABILITIES", "IrcCodec"]
