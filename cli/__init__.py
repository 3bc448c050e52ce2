"""The `chat` command line (installed as `chat.cli`; see pyproject.toml)."""
