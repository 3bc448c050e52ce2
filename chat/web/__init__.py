"""The web client: the page (`static/`, plain files shipped inside the package) and the web door's codec.

`chat serve --web-port PORT` serves the page at `/` and the WebSocket at `/ws` on the server's own event loop
(chat.protocol.websocket); `--https-port PORT` serves the same over TLS (the door behind the TLS transport).
The files are read once, when the door opens, and served from memory.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from importlib.resources.abc import Traversable

from chat.protocol.http import OriginPolicy, StaticFile
from chat.protocol.websocket import WebCodec
from chat.server.config import ServerConfig

INDEX = "/index.html"


def load_site() -> dict[str, StaticFile]:
    """Every file under static/, by request path; `/` is the page itself."""
    site: dict[str, StaticFile] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.name.startswith(".") or entry.name == "__pycache__":
                continue
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            else:
                site[prefix + entry.name] = StaticFile.of(entry.name, entry.read_bytes())

    walk(files("chat.web") / "static", "/")
    site["/"] = site[INDEX]
    return site


def web_codec(config: ServerConfig, https: bool = False) -> Callable[[], WebCodec]:
    """What each connection to the web door speaks (for `EventLoop.add_door`); `https`: the door behind the TLS
    transport, whose own page is an https:// one only."""
    site = load_site()
    origins = OriginPolicy(config.web_origins, schemes=("https",) if https else ("http", "https"))
    max_line = config.max_line
    return lambda: WebCodec(site, origins, max_line)
