"""``rationales review``: serve the local review app over a store (browse, read, label steps,
write feedback and patch), on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import getpass
import ipaddress
import os
import socket
from typing import Optional

import typer

from ..errors import RationalesError
from .common import BaseUrlOpt, StoreOpt, err_console, make_backend, out_console


def register(app: typer.Typer) -> None:
    app.command("review")(review_cmd)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RationalesError(f"Cannot listen on {host}:{port} ({e.strerror or e}); pass another --port "
                              "(0 picks a free one).") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def review_cmd(
    store: str = StoreOpt,
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Address to listen on. Anything but loopback needs --token."),
    token: Optional[str] = typer.Option(None, "--token", envvar="RATIONALES_REVIEW_TOKEN",
                                        help="Access token checked on every request (required off loopback)."),
    user: Optional[str] = typer.Option(None, "--user", help="Labeller name stored with each label "
                                                            "(default: your login name)."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b",
                                          help="Backend that patches rationales with feedback (loaded on first "
                                               "patch); without it feedback is stored only."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model for patching (with --backend)."),
    base_url: Optional[str] = BaseUrlOpt,
    max_tokens: int = typer.Option(512, min=1, help="Max new tokens of a patched rationale."),
) -> None:
    """Open a store in the browser: browse and filter rationales, read their steps with every
    verdict, label steps from the keyboard, write feedback and patch. Ctrl-C stops it."""
    from ..review.app import ReviewConfig, create_app

    if not _is_loopback(host) and not token:
        raise RationalesError(f"Listening on {host} exposes the store beyond this machine: pass --token "
                              "(a secret of 8+ characters, also RATIONALES_REVIEW_TOKEN) or keep --host 127.0.0.1.")
    try:
        import uvicorn
    except ImportError:
        raise RationalesError("rationales review needs the review extra: pip install 'rationales[review]'.") from None
    name = user or os.environ.get("RATIONALES_USER") or _login()
    factory = None
    label = ""
    if backend is not None or model is not None:
        be_name = backend or "llamacpp"
        label = f"{be_name}:{model}" if model else be_name

        def factory():  # noqa: ANN202 - loaded on the first patch only
            return make_backend(be_name, model, base_url)

    cfg = ReviewConfig(store=store, user=name, token=token, backend_factory=factory, backend_label=label,
                       patch_max_tokens=max_tokens,
                       allowed_hosts=None if not _is_loopback(host) else sorted({host, "127.0.0.1", "localhost", "::1"}))
    app = create_app(cfg)
    sock = _bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    out_console.print(f"rationales review: {url}{'?token=' + token if token else ''}  (store {store}, "
                      f"labeller {name}; Ctrl-C to stop)", highlight=False, soft_wrap=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, after a clean shutdown
        pass
    finally:
        sock.close()
    err_console.print("review server stopped")


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"
