"""Run a throwaway nginx on 127.0.0.1, with its defaults (``proxy_buffering on``), for the
duration of a ``with`` block."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .servers import free_port, wait_for_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STOP_TIMEOUT = 10.0

CONFIG = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port}{listen};
        {server}
    }}
}}
"""


@contextmanager
def run_nginx(
    directory: Path, server: str, *, connections: int = 64, listen: str = ""
) -> Iterator[int]:
    """Start nginx with ``server`` as the body of its one ``server`` block (its ``listen``
    is given here, with ``listen``'s parameters, ``"ssl http2"`` say), its files in
    ``directory``; yield the port it listens on. Stopped by PID at the end. Raises
    ``RuntimeError`` with what nginx said if it exits at startup."""
    port = free_port()
    # As root, nginx's workers would run as "nobody", who cannot write to the test's folder.
    user = "user root;" if os.geteuid() == 0 else ""
    conf = directory / "nginx.conf"
    conf.write_text(
        CONFIG.format(
            prefix=directory,
            port=port,
            listen=f" {listen}" if listen else "",
            user=user,
            connections=connections,
            server=server,
        )
    )
    output = directory / "nginx.out"  # a file, not a pipe nobody reads
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(conf), "-g", "daemon off;"],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            wait_for_port(port, proc, "nginx")
        except RuntimeError as exc:
            said = output.read_text(errors="replace")
            raise RuntimeError(f"{exc}:\n{said}") from None
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
