"""`facelab serve`: the REST API and web page (uvicorn), and API key creation."""
from __future__ import annotations

from pathlib import Path

import click

from .common import handle_errors


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default keeps the server on this machine; 0.0.0.0 opens it to the "
                   "network.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--gallery", default=None, metavar="PATH|URL",
              help="The 'default' gallery: an SQLite file or postgresql:// URL. [default: DATA/gallery.db]")
@click.option("--model", default=None, metavar="NAME",
              help="Embedding model of the galleries served (default sface); a photo library's is sface+flip.")
@click.option("--data", "data_dir", default="data", show_default=True, type=click.Path(file_okay=False),
              help="Folder for API key hashes and galleries created from the web page.")
@click.option("--require-key", is_flag=True, help="Require an API key for every /v1 call, not only gallery changes.")
@click.option("--max-upload-mb", type=click.FloatRange(0.01, 100), default=None,
              help="Largest accepted image upload, MiB. [default: $FACELAB_SERVE_MAX_UPLOAD_MB, else 20]")
@click.option("--max-megapixels", type=click.FloatRange(0.01, 50), default=None,
              help="Largest accepted image, megapixels. [default: $FACELAB_SERVE_MAX_MEGAPIXELS, else 50]")
@click.option("--threads", type=click.IntRange(1, 64), default=None,
              help="Inference threads (requests beyond these wait). [default: $FACELAB_SERVE_THREADS, else the "
                   "CPUs this process may use]")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes sharing the port (uvicorn workers), each with its own models. Several "
                   "processes on one SQLite gallery serialise their writes; use a postgresql:// gallery for many.")
@click.option("--create-key", "create_key", is_flag=True,
              help="Create an API key, print it once (only its hash is kept) and exit.")
@click.option("--key-name", default="default", show_default=True, help="A label for --create-key.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Also answer requests for this host name (repeatable; '*' = any). On a local address the "
                   "server otherwise answers only localhost, 127.0.0.1, [::1] and the address itself, which "
                   "stops DNS-rebinding pages from reaching it.")
@handle_errors
def serve(host, port, gallery, model, data_dir, require_key, max_upload_mb, max_megapixels, threads, create_key,
          key_name, allowed_hosts, workers):
    """Serve the REST API (/v1, docs at /docs) and the web page (/).

    Gallery changes always need an API key (`Authorization: Bearer KEY`). When no key exists yet, one is
    created at start-up and printed once, with a page link that hands it to the page.
    """
    from ..extras import require

    require("server", "facelab serve")
    from ..server.auth import create_key as make_key
    from ..server.settings import Settings

    # Defaults, then FACELAB_SERVE_* variables, then these options (None: not given); see server/settings.py.
    settings = Settings.from_env(
        data_dir=Path(data_dir), gallery=gallery, model=model, require_key_for_all=require_key, preload_models=True,
        max_upload_bytes=int(max_upload_mb * 2**20) if max_upload_mb else None,
        max_pixels=int(max_megapixels * 1e6) if max_megapixels else None,
        inference_threads=threads, allowed_hosts=host_names(host, allowed_hosts))
    if create_key:
        key = make_key(settings.keys_file, key_name)
        click.echo(key)
        click.echo(f"API key created (shown once; its SHA-256 is in {settings.keys_file})", err=True)
        return

    import uvicorn

    from ..server import create_app
    from ..server.auth import KeyStore

    _check_port_free(host, port)
    _check_gallery_opens(str(settings.gallery), settings.model)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    page = url
    if not KeyStore(settings.keys_file).has_keys():
        key = make_key(settings.keys_file, "first")
        page = f"{url}#key={key}"
        click.echo(f"created an API key for gallery changes (shown once, stored hashed in {settings.keys_file}):")
        click.echo(f"  {key}")
    import re

    shown = re.sub(r"//([^:/@]+):[^/]*@", r"//\1:***@", str(settings.gallery))  # no password on screen
    click.echo(f"facelab is serving {shown} on {url}  (API docs: {url}docs)")
    click.echo(f"open: {page}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host}: other machines can reach this server", err=True)
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
        return
    # Worker processes are fresh interpreters: they build the app from an import string and read the settings
    # from the environment (create_app_from_env).
    import dataclasses
    import json
    import os

    from ..server.app import SETTINGS_ENV

    os.environ[SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings), default=str)
    click.echo(f"{workers} server processes share port {port}")
    uvicorn.run("facelab.server.app:create_app_from_env", factory=True, workers=workers, host=host, port=port,
                log_level="warning", access_log=False)


def _check_port_free(host: str, port: int) -> None:
    """Say so in one line before printing a URL that would not work."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise click.UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                                   f"check --host and --port") from None


def _check_gallery_opens(location: str, model: str) -> None:
    """An existing gallery file that is not one, or holds another model's embeddings, is one line now, not an
    error on every request later. (A new file is created on first use; a PostgreSQL URL is opened then too.)"""
    from ..gallery import open_gallery
    from ..gallery.store import model_info

    model_info(model)  # an unknown model name (exit 5), whether or not the gallery exists yet
    if "://" in location or not Path(location).exists():
        return
    open_gallery(location, model=model, create=False).close()


LOCAL_NAMES = ["localhost", "127.0.0.1", "[::1]"]


def host_names(host: str, extra: tuple[str, ...] = ()) -> list[str] | None:
    """Host header values the server answers: on a local address the local names and the address itself (a page
    of another site that rebinds its DNS name to 127.0.0.1 is refused), plus any given; None (any) on a public
    bind without --allowed-host."""
    if "*" in extra:
        return None
    bound = f"[{host}]" if ":" in host else host
    if host in ("127.0.0.1", "localhost", "::1") or host.startswith("127."):
        return sorted({*LOCAL_NAMES, bound, *extra})
    return sorted({*extra, bound, *LOCAL_NAMES}) if extra else None
