"""The client's settings file: where it lives, what it may hold, /ignore editing it in place, and its TLS settings
against a real TLS server (a throwaway CA)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from chat.client.config import ClientConfig, ConfigError, default_path, load_config, resolve_tls, save_ignore
from harness import WAIT, ServerThread, TLSFiles, chat_command


def test_it_lives_under_xdg_config_home_or_dot_config() -> None:
    assert default_path({"XDG_CONFIG_HOME": "/x/cfg", "HOME": "/home/a"}) == Path("/x/cfg/chat/client.toml")
    assert default_path({"HOME": "/home/a"}) == Path("/home/a/.config/chat/client.toml")
    assert default_path({"XDG_CONFIG_HOME": "relative", "HOME": "/home/a"}) == Path(
        "/home/a/.config/chat/client.toml")  # the XDG spec: a relative path is ignored


def test_no_file_gives_the_defaults_and_a_file_gives_its_values(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    config = load_config(path)
    assert (config.host, config.port, config.nick, config.bell, config.desktop, config.ignore) == (
        None, None, None, True, "auto", [])
    path.write_text('[server]\nhost = "chat.example"\nport = 4000\nnick = "al"\ntls = true  # a later key\n'
                    '[notify]\nbell = false\ndesktop = "osc9"\n[ignore]\nnicks = ["bob"]\n')
    config = load_config(path)
    assert (config.host, config.port, config.nick, config.bell, config.desktop, config.ignore) == (
        "chat.example", 4000, "al", False, "osc9", ["bob"])


@pytest.mark.parametrize(("text", "why"), [
    ("[server\n", "not valid TOML"),
    ("[server]\nport = 99999\n", "server.port"),
    ('[notify]\ndesktop = "loud"\n', "notify.desktop"),
    ('[ignore]\nnicks = "bob"\n', "ignore.nicks"),
])
def test_a_bad_file_is_one_clear_line(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "client.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=why) as raised:
        load_config(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)


def test_ignore_edits_the_file_in_place_keeping_comments_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text('# my settings\n[server]\nhost = "h"  # at work\npassword_file = "~/.chatpw"\n')
    config = load_config(path)
    assert save_ignore(config, ["bob", "carol"], "other", 1, "zed") is None
    text = path.read_text()
    assert "# my settings" in text and "# at work" in text
    saved = tomllib.loads(text)
    assert saved["server"] == {"host": "h", "password_file": "~/.chatpw"}  # not overwritten with what is in use
    assert saved["ignore"]["nicks"] == ["bob", "carol"] and config.ignore == ["bob", "carol"]
    assert list(tmp_path.iterdir()) == [path]  # written whole, through a temporary file that is gone


def test_a_new_file_records_the_server_and_a_folder_that_cannot_be_written_says_why(tmp_path: Path) -> None:
    path = tmp_path / "new" / "chat" / "client.toml"
    assert save_ignore(load_config(path), ["bob"], "127.0.0.1", 33000, "alice") is None
    assert tomllib.loads(path.read_text())["server"] == {"host": "127.0.0.1", "port": 33000, "nick": "alice"}
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    problem = save_ignore(load_config(blocked / "client.toml"), ["bob"], "h", 1, None)
    assert problem is not None and "cannot write" in problem


# ------------------------------------------------------------------------------------------------------- TLS


def test_the_tls_settings_are_read_and_a_relative_ca_is_the_files_neighbour(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text('[server]\ntls = true\nca = "certs/ca.pem"\n')
    config = load_config(path)
    assert (config.tls, config.ca, config.insecure) == (True, str(tmp_path / "certs" / "ca.pem"), False)
    path.write_text('[server]\ntls_ca = "/etc/chat/ca.pem"\n')  # the name reserved for it before TLS came
    assert load_config(path).ca == "/etc/chat/ca.pem"
    path.write_text("[server]\ninsecure = true\n")
    config = load_config(path)
    assert (config.tls, config.ca, config.insecure) == (None, None, True)


@pytest.mark.parametrize(("text", "why"), [
    ('[server]\nca = "ca.pem"\ninsecure = true\n', "ca and insecure contradict"),
    ("[server]\ntls = false\ninsecure = true\n", "tls = false, but insecure needs TLS"),
    ('[server]\ntls = "yes"\n', "server.tls"),
])
def test_contradictory_tls_settings_are_one_clear_line(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "client.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=why):
        load_config(path)


FILE_CA = ClientConfig(Path("/c/client.toml"), tls=True, ca="/c/ca.pem")
FILE_INSECURE = ClientConfig(Path("/c/client.toml"), insecure=True)


@pytest.mark.parametrize(("config", "options", "wanted"), [
    (ClientConfig(), (None, None, None), (False, None, False)),
    (FILE_CA, (None, None, None), (True, "/c/ca.pem", False)),
    (FILE_CA, (False, None, None), (False, None, False)),  # --no-tls
    (FILE_CA, (None, "/mine.pem", None), (True, "/mine.pem", False)),  # --ca replaces the file's
    (FILE_CA, (None, None, True), (True, None, True)),  # --insecure replaces the file's ca
    (FILE_INSECURE, (None, None, None), (True, None, True)),  # insecure implies tls
    (FILE_INSECURE, (None, None, False), (False, None, False)),  # --no-insecure: and no TLS is left
    (FILE_INSECURE, (True, None, False), (True, None, False)),  # --tls --no-insecure: checked
    (FILE_INSECURE, (None, "/mine.pem", None), (True, "/mine.pem", False)),  # --ca replaces its insecure
    (ClientConfig(), (True, None, None), (True, None, False)),
])
def test_options_win_over_the_file_one_setting_at_a_time(config: ClientConfig,
                                                         options: tuple[bool | None, str | None, bool | None],
                                                         wanted: tuple[bool, str | None, bool]) -> None:
    chosen = resolve_tls(config, *options)
    assert (chosen.on, chosen.ca, chosen.insecure) == wanted


def test_a_new_file_records_the_tls_settings_in_use_but_never_insecure(tmp_path: Path) -> None:
    path = tmp_path / "chat" / "client.toml"
    in_use = dataclasses.replace(load_config(path), tls=True, ca="/etc/ca.pem")
    assert save_ignore(in_use, ["bob"], "h", 33443, "al") is None
    assert tomllib.loads(path.read_text())["server"] == {"host": "h", "port": 33443, "nick": "al", "tls": True,
                                                         "ca": "/etc/ca.pem"}
    other = tmp_path / "other" / "client.toml"
    assert save_ignore(dataclasses.replace(load_config(other), tls=True, insecure=True), [], "h", 1, None) is None
    assert tomllib.loads(other.read_text())["server"] == {"host": "h", "port": 1, "tls": True}


def _client(server: ServerThread, config_home: Path, *args: str, line: str = "hello",
            port: int | None = None) -> subprocess.CompletedProcess[str]:
    """`chat client --plain` as a process, its settings under `config_home` (no CHAT_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")} | {"XDG_CONFIG_HOME": str(config_home)}
    return subprocess.run([*chat_command(), "client", "--plain", "--host", server.host, *args], input=line + "\n",
                          capture_output=True, text=True, timeout=WAIT * 3, env=env)


def _settings(config_home: Path, text: str) -> None:
    (config_home / "chat").mkdir(parents=True, exist_ok=True)
    (config_home / "chat" / "client.toml").write_text(text)


def test_the_settings_file_connects_with_tls_and_options_override_it(make_server: Callable[..., ServerThread],
                                                                     tls_files: TLSFiles, tmp_path: Path) -> None:
    server = make_server(tls_port=0, tls_cert=tls_files.cert, tls_key=tls_files.key)
    bob = server.client("bob", json_mode=True)
    home = tmp_path / "config"
    shutil.copy(tls_files.ca_file, tmp_path / "ca.pem")
    # the file alone: TLS to its port, trusting its CA (a path relative to the file's folder)
    _settings(home, f'[server]\nport = {server.tls_port}\nnick = "grace"\ntls = true\nca = "../../ca.pem"\n')
    done = _client(server, home, line="from the file")
    assert done.returncode == 0, done.stderr
    assert bob.expect_event("message", text="from the file")["nick"] == "grace"
    # without its ca the throwaway CA is trusted nowhere: the file's tls is in force, and so refused
    _settings(home, f'[server]\nport = {server.tls_port}\nnick = "grace"\ntls = true\n')
    refused = _client(server, home)
    assert refused.returncode == 1 and "certificate is not trusted" in refused.stderr
    accepted = _client(server, home, "--ca", tls_files.ca_file, line="with --ca")  # the option fills it in
    assert accepted.returncode == 0, accepted.stderr
    assert bob.expect_event("message", text="with --ca")["nick"] == "grace"
    # --no-tls and --port: plain to the plain port, whatever the file says
    plain = _client(server, home, "--no-tls", "--port", str(server.port), line="in clear")
    assert plain.returncode == 0, plain.stderr
    assert bob.expect_event("message", text="in clear")["nick"] == "grace"
    # insecure in the file: connects, and says where the danger comes from
    _settings(home, f'[server]\nport = {server.tls_port}\nnick = "heidi"\ninsecure = true\n')
    unchecked = _client(server, home, line="unchecked")
    assert unchecked.returncode == 0, unchecked.stderr
    assert "WARNING: insecure = true in" in unchecked.stderr and "NOT checked" in unchecked.stderr
    assert bob.expect_event("message", text="unchecked")["nick"] == "heidi"
    checked = _client(server, home, "--no-insecure", "--tls")  # checked again: the CA is unknown
    assert checked.returncode == 1 and "certificate is not trusted" in checked.stderr
    _settings(home, '[server]\nca = "missing.pem"\n')
    missing = _client(server, home)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "client.toml: cannot use the CA file" in missing.stderr and "missing.pem" in missing.stderr
