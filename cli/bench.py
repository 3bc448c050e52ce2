"""`chat bench`: load-test a running server and print a summary."""

from __future__ import annotations

import math
import sys
from typing import Annotated

import typer

from chat.cli.options import DEFAULT_HOST, DEFAULT_PORT, Host, Port


def bench(
    host: Host = DEFAULT_HOST,
    port: Port = DEFAULT_PORT,
    clients: Annotated[int, typer.Option(min=1, max=20_000, help="Clients to connect.")] = 100,
    rooms: Annotated[int, typer.Option(min=1, help="Rooms; client i joins room i % ROOMS.")] = 1,
    messages: Annotated[int, typer.Option(min=0, help="Messages each sender sends.")] = 100,
    senders: Annotated[int | None, typer.Option(min=1, help="Only the first N clients send (default: all).")]
    = None,
    window: Annotated[int, typer.Option(min=1, help="A sender's messages in flight (sent, not yet echoed back "
                                                    "to it), at most.")] = 32,
    size: Annotated[int, typer.Option(min=0, max=4000, help="Pad each message to this many bytes.")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, help="Clients connecting at the same time.")] = 100,
    timeout: Annotated[float, typer.Option(min=1, help="Give up after this many seconds.")] = 60.0,
    prefix: Annotated[str, typer.Option(help="Nicknames are PREFIX<i>, rooms PREFIX<r>.")] = "bench",
    rate: Annotated[float, typer.Option(min=0, help="Paced: messages per second over all senders, sent in turn "
                                                    "(the W4 workload: --rate 500 --duration 10); 0: burst.")] = 0.0,
    duration: Annotated[float | None, typer.Option(min=0.1, help="Paced: seconds to send for (sets --messages to "
                                                                 "RATE x DURATION / senders).")] = None,
    tls: Annotated[bool, typer.Option("--tls", help="Every client on TLS (the server's --tls-port).")] = False,
    ca: Annotated[str | None, typer.Option("--ca", help="PEM CA file to trust (a self-signed server's certificate); "
                                                        "implies --tls.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="TLS without checking the certificate; implies "
                                                              "--tls.")] = False,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow a server that is not on this "
                                                                      "machine (it is a load test).")] = False,
) -> None:
    """Load-test a running chat server: clients join rooms and talk as fast as the server takes it.

    Every member of a room receives every message; the summary shows deliveries per second (a message
    reaching one other member), latency percentiles, and whether anything was lost, duplicated or
    reordered. Run the server with flood control off (`chat serve --rate 0`) or the test measures the
    flood control. Exit status 0 when every message arrived once and in order, 1 otherwise.

        chat bench --port 33000 --clients 100 --messages 100
        chat bench --port 33443 --tls --ca cert.pem --rate 500 --duration 10      # paced, over TLS
    """
    from chat.bench import BenchConfig, format_table, is_loopback, progress_bar, run_bench
    from chat.client.connection import tls_context

    if not allow_remote and not is_loopback(host):
        print(f"chat bench: {host} is not this machine; add --allow-remote to load-test it", file=sys.stderr)
        raise typer.Exit(2)
    if duration is not None:
        if not rate:
            raise typer.BadParameter("--duration paces the senders: give --rate too", param_hint="--duration")
        messages = math.ceil(rate * duration / (senders or clients))
    context = tls_context(ca, insecure) if tls or ca is not None or insecure else None
    cfg = BenchConfig(host=host, port=port, clients=clients, rooms=rooms, senders=senders, messages=messages,
                      window=window, size=size, concurrency=concurrency, timeout=timeout, prefix=prefix, rate=rate,
                      tls=context)
    print(f"chat bench: {clients} clients in {rooms} room(s), {senders or clients} sending {messages} "
          f"messages each{f' at {rate:g}/s in all' if rate else ''}, on {host}:{port}{' over TLS' if context else ''}",
          file=sys.stderr)
    result = run_bench(cfg, progress_bar(sys.stderr))
    print(format_table(result.rows()))
    raise typer.Exit(0 if result.ok else 1)
