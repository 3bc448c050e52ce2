"""The client's settings file, `$XDG_CONFIG_HOME/chat/client.toml` (`~/.config/chat/client.toml` by default).

```toml
[server]              # where `chat client` connects when no option or CHAT_* variable says otherwise
host = "127.0.0.1"
port = 33000
nick = "alice"
tls = true            # --tls: connect with TLS (the default port becomes 33443)
ca = "ca.pem"         # --ca: trust this CA file instead of the system's (relative: to this file's folder)
insecure = false      # --insecure: do not check the certificate at all (warned about every time)

[notify]
bell = true           # ring the terminal's bell on a mention or a private message
desktop = "auto"      # a desktop notification too: auto (when the terminal is known to show them), osc9,
                      # osc777 or off

[ignore]
nicks = ["spammer"]   # /ignore NICK adds to this list, /unignore NICK removes
```

Every key is optional, and keys this client does not know are left alone (a later version may add a
`password_file` under `[server]` without breaking this one). `ca` or `insecure` implies `tls`; `tls_ca`, the name
reserved for `ca` before TLS came, is read as `ca`. Options and CHAT_* variables win over the file, one setting at
a time (`resolve_tls`). The file is the user's: the client writes it only for /ignore and /unignore, with tomlkit,
keeping the comments and keys it finds; when it creates the file it records the server, nick and TLS settings in
use (`insecure` excepted: it is never written for the user), so a plain `chat client` comes back to them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomlkit
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool, ValidationError
from tomlkit.exceptions import TOMLKitError

DesktopNotify = Literal["auto", "osc9", "osc777", "off"]


class ConfigError(Exception):
    """The settings file cannot be used; the message says where and why, in one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Server(_Section):
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    nick: str | None = None
    tls: StrictBool | None = None  # strict: "no" must not read as true
    ca: str | None = Field(default=None, min_length=1, validation_alias=AliasChoices("ca", "tls_ca"))
    insecure: StrictBool = False


class _Notify(_Section):
    bell: bool = True
    desktop: DesktopNotify = "auto"


class _Ignore(_Section):
    nicks: list[str] = []


class _File(_Section):
    server: _Server = _Server()
    notify: _Notify = _Notify()
    ignore: _Ignore = _Ignore()


@dataclass(slots=True)
class ClientConfig:
    path: Path | None = None  # None: no file (tests, or a folder that cannot be found)
    host: str | None = None
    port: int | None = None
    nick: str | None = None
    tls: bool | None = None  # None: the file does not say (ca or insecure still turn it on)
    ca: str | None = None  # an absolute path
    insecure: bool = False
    bell: bool = True
    desktop: DesktopNotify = "auto"
    ignore: list[str] = field(default_factory=list)


def default_path(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Where the settings live: under $XDG_CONFIG_HOME, else ~/.config (None if there is no home either)."""
    base = environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative path is to be ignored
        home = environ.get("HOME") or os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".config")
    return Path(base) / "chat" / "client.toml"


def load_config(path: Path | None) -> ClientConfig:
    """The settings in `path`; the defaults if there is no such file. Raises ConfigError for a bad one."""
    if path is None or not path.exists():
        return ClientConfig(path)
    try:
        data = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
        parsed = _File.model_validate(data)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    except TOMLKitError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    server = parsed.server
    if server.ca is not None and server.insecure:
        raise ConfigError(f"{path}: server: ca and insecure contradict each other (ca checks the certificate)")
    if server.tls is False and (server.ca is not None or server.insecure):
        raise ConfigError(f"{path}: server: tls = false, but {'ca' if server.ca else 'insecure'} needs TLS")
    ca = None if server.ca is None else str(path.parent / Path(server.ca).expanduser())  # an absolute one stays
    return ClientConfig(path, server.host, server.port, server.nick, server.tls, ca, server.insecure,
                        parsed.notify.bell, parsed.notify.desktop, list(parsed.ignore.nicks))


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """How to connect: TLS or not, the CA file to trust (None: the system's), or no check at all."""

    on: bool
    ca: str | None = None
    insecure: bool = False
    source: str = "--insecure"  # where `insecure` came from, for the warning


def resolve_tls(config: ClientConfig, tls: bool | None, ca: str | None, insecure: bool | None) -> TLSSettings:
    """The options (None: not given) over the file, one setting at a time: `--no-tls` turns TLS off whatever the
    file says; `--ca` replaces the file's `ca` and `insecure`; `--insecure` replaces its `ca` (`--no-insecure`
    only its `insecure`). A `ca` or `insecure` left in force implies TLS. (`--ca` with `--insecure` is the
    caller's to refuse.)"""
    if tls is False:
        return TLSSettings(False)
    use_ca = ca if ca is not None else None if insecure else config.ca
    use_insecure = insecure if insecure is not None else config.insecure and ca is None
    on = bool(tls) or use_ca is not None or use_insecure or (tls is None and bool(config.tls))
    source = "--insecure" if insecure else f"insecure = true in {config.path}"
    return TLSSettings(on, use_ca if on else None, use_insecure and on, source)


def save_ignore(config: ClientConfig, nicks: list[str], host: str, port: int, nick: str | None) -> str | None:
    """Write the ignore list to the settings file, keeping everything else in it. Returns why it could not be
    written, or None. A new file also records the server and nick in use."""
    path = config.path
    if path is None:
        return "there is no config folder (no $XDG_CONFIG_HOME or $HOME)"
    try:
        document = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else _new_document(
            host, port, nick, config)
        ignore: Any = document.setdefault("ignore", tomlkit.table())
        ignore["nicks"] = nicks
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, tomlkit.dumps(document))
    except (OSError, TOMLKitError, UnicodeDecodeError) as e:
        return f"cannot write {path}: {e}"
    config.ignore = list(nicks)
    return None


def _new_document(host: str, port: int, nick: str | None, in_use: ClientConfig) -> tomlkit.TOMLDocument:
    document = tomlkit.document()
    document.add(tomlkit.comment("chat client settings (docs/CLIENT.md); command-line options and CHAT_* "
                                 "variables win over them."))
    server = tomlkit.table()
    server["host"] = host
    server["port"] = port
    if nick:
        server["nick"] = nick
    if in_use.tls:  # what the options said (the caller's ClientConfig holds the settings in force)
        server["tls"] = True
        if in_use.ca is not None:
            server["ca"] = in_use.ca
    document["server"] = server
    return document


def _write_atomically(path: Path, text: str) -> None:
    """Replace the file whole or not at all: a crash never leaves half a settings file."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)  # the temporary file must not stay behind
        raise
