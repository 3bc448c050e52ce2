"""The test harness: real servers, real clients, real faults. Tests import what they need from here."""

from harness.clients import WAIT, LineClient, wait_for
from harness.databases import database_before_accounts, database_before_search, database_before_vector_column
from harness.faults import fill_disk, immutable, immutable_supported, small_tmpfs, sqlite_write_lock
from harness.irc import IrcClient
from harness.logs import LogCapture, capture_logs, log_problems, record_figures, scale, soak
from harness.process import ServeProcess, chat_command, serve_process
from harness.procfs import (
    WRITE_SYSCALL,
    blocked_writing,
    cpu_seconds,
    full_pipe,
    peak_rss_bytes,
    rss_bytes,
    soft_open_file_limit,
    stored_messages,
    thread_cpu_seconds,
)
from harness.scripted import ScriptedServer
from harness.search import every_match
from harness.server import ServerThread, server_config
from harness.swarm import Swarm, SwarmClient
from harness.terminal import TerminalClient, TmuxSession, tmux_available
from harness.tls import RecordClient, TLSFiles, client_hello, make_tls_files, untrusted_context
from harness.web import HttpAnswer, WebSocketClient, http_get, http_request
from harness.world import World

__all__ = [
    'WAIT',
    'WRITE_SYSCALL',
    'HttpAnswer',
    'IrcClient',
    'LineClient',
    'LogCapture',
    'RecordClient',
    'ScriptedServer',
    'ServeProcess',
    'ServerThread',
    'Swarm',
    'SwarmClient',
    'TLSFiles',
    'TerminalClient',
    'TmuxSession',
    'WebSocketClient',
    'World',
    'blocked_writing',
    'capture_logs',
    'chat_command',
    'client_hello',
    'cpu_seconds',
    'database_before_accounts',
    'database_before_search',
    'database_before_vector_column',
    'every_match',
    'fill_disk',
    'full_pipe',
    'http_get',
    'http_request',
    'immutable',
    'immutable_supported',
    'log_problems',
    'make_tls_files',
    'peak_rss_bytes',
    'record_figures',
    'rss_bytes',
    'scale',
    'serve_process',
    'server_config',
    'small_tmpfs',
    'soak',
    'soft_open_file_limit',
    'sqlite_write_lock',
    'stored_messages',
    'thread_cpu_seconds',
    'tmux_available',
    'untrusted_context',
    'wait_for',
]
