"""The client's settings file: where it lives, what it may hold, and /ignore editing it in place."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from chat.client.config import ConfigError, default_path, load_config, save_ignore


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
