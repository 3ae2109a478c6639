"""Lend the host's pip package sources to a `docker build` on the loopback interface.

    python3 scripts/pip_sources.py BUILD_ARGS_FILE [PORT]     # serves until killed

pip on a host may read packages from local folders (`find-links = /opt/wheels`,
`extra-index-url = file:///opt/pypi/simple`): a build container cannot see them. This
reads the host's effective pip settings (`pip config list`: environment over config
files), serves every local folder they name, read-only, on 127.0.0.1 (a build with
`--network host` reaches it), and writes the same settings with those folders turned
into http://127.0.0.1:PORT/... URLs to BUILD_ARGS_FILE as KEY=VALUE lines (PORT: the
given one when free, else any; keep it fixed, since the URLs are build args and so part of
the build cache's key):

    PIP_INDEX_URL / PIP_EXTRA_INDEX_URL / PIP_FIND_LINKS   (only those the host sets)
    PIP_CERT_FILE                                          (host CA bundle, if any)

Only the named folders (and, for an index, the folder above `simple/`, where its
relative file links point) are served; any other path answers 404. Stdlib only.
"""
from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

KEYS = ("index-url", "extra-index-url", "find-links")


def pip_settings() -> dict[str, str]:
    """Effective value per key: PIP_* environment, else install.*, else global.*."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                         text=True, check=False).stdout
    found: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        name, sep, value = line.partition("=")
        if not sep:
            continue
        scope, _, key = name.rpartition(".")
        found.setdefault(key, {})[scope] = value.strip().strip("'\"")
    settings = {}
    for key in KEYS + ("cert",):
        env = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        scopes = found.get(key, {})
        value = env if env is not None else scopes.get(":env:", scopes.get("install", scopes.get("global")))
        if value:
            settings[key] = value
    return settings


def local_path(item: str) -> Path | None:
    if item.startswith("file://"):
        return Path(unquote(urlparse(item).path))
    if item.startswith("/"):
        return Path(item)
    return None


class Handler(http.server.SimpleHTTPRequestHandler):
    roots: tuple[Path, ...] = ()

    def translate_path(self, path: str) -> str:
        p = Path(os.path.normpath(unquote(urlparse(path).path)))
        if any(p == r or r in p.parents for r in self.roots):
            return str(p)
        return "/nonexistent-arkbench-pip-sources"

    def log_message(self, *args) -> None:  # quiet: pip's own output says what it fetched
        pass


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    settings = pip_settings()
    roots: set[Path] = set()
    handler = functools.partial(Handler, directory="/")
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2]) if len(sys.argv) == 3 else 0), handler)
    except OSError as e:  # port taken: any free one (the build then misses its cache)
        print(f"pip_sources: port {sys.argv[2]}: {e}; using a free port", file=sys.stderr)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    base = f"http://127.0.0.1:{server.server_port}"
    args: dict[str, str] = {}
    for key in KEYS:
        if key not in settings:
            continue
        items = []
        for item in settings[key].split():
            p = local_path(item)
            if p is None:
                items.append(item)
            elif p.is_dir():
                p = p.resolve()
                # an index's pages link to files beside simple/ (../../files/x.whl)
                roots.add(p.parent if key != "find-links" and p.name == "simple" else p)
                items.append(base + str(p) + "/")
            else:
                print(f"pip_sources: skipping {key} {item}: no such folder", file=sys.stderr)
        if items:
            args["PIP_" + key.upper().replace("-", "_")] = " ".join(items)
    cert = settings.get("cert") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    if Path(cert).is_file():
        args["PIP_CERT_FILE"] = cert
    Handler.roots = tuple(sorted(roots))
    tmp = Path(sys.argv[1] + ".tmp")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in args.items()))
    tmp.replace(sys.argv[1])  # the caller waits for this file: written whole, then renamed
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
