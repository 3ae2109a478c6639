"""Warm start: run a stage script in a fork of a server that has already imported
torch, transformers, datasets, mlflow and arkbench.

    python -m arkbench.warm stages/finetune.py --model bert --task cola   # what dvc.yaml runs
    python stages/finetune.py --model bert --task cola                    # the same stage, cold

Why: a smoke stage's own work takes seconds, while starting Python and importing
what a stage imports costs ~6-8 CPU-seconds per process (torch ~2, transformers ~1.5,
datasets + pandas ~1.5, scipy.stats ~1, mlflow ~3 in the tracking worker), and a DVC
pipeline is one process per stage (51 in smoke). A fork of a process that has done
those imports starts the stage in milliseconds.

Client (`python -m arkbench.warm SCRIPT ARGS...`; this module imports only the stdlib):
  1. key = hash of what a server's imports depend on: the Python executable and
     version, the working directory, the environment (all of it, less a few
     per-invocation variables), the size and mtime of every .py file of the arkbench
     package and of the stage scripts' folder, and the mtime of every sys.path folder
     (pip install changes it). Any change gives another key, so another server: a
     server never runs code older than the files on disk.
  2. connect to <tmp>/arkbench-warm-<uid>/<key>.sock (a folder only this user can enter),
     send argv, cwd and environment
     plus the file descriptors 0, 1, 2 (SCM_RIGHTS), receive the stage's pid, forward
     SIGINT / SIGTERM / SIGHUP to it, receive its exit status and exit with it.
  3. no server: start one in the background and run the script here, cold
     (runpy, as `python SCRIPT` would); the next stage finds the server warm.

Server (`python -m arkbench.warm --serve SOCK`):
  holds SOCK.lock (flock) while it lives, so one server per key; imports every module
  the stage scripts import at top level (read from stages/*.py with `ast`) and
  mlflow's SQL store; refuses to serve if an import started a thread (fork copies
  only the calling thread); then per request forks a child that takes the client's
  descriptors, cwd, environment and argv, reseeds `random` and numpy's global
  generator from the OS as a fresh process would, runs the script as `__main__`,
  waits for non-daemon threads, runs atexit handlers and exits with the script's
  status. A client that disappears (killed) gets its stage SIGTERMed. The server
  exits after ARKBENCH_WARM_IDLE seconds (default 120) without work, counted from
  the end of the cold run that started it.

ARKBENCH_WARM=off runs every stage cold. Under torchrun (ARKBENCH_NPROC_PER_NODE > 1,
or LOCAL_RANK set) stages always run cold: torchrun starts its own processes.
"""
from __future__ import annotations

import hashlib
import json
import os
import runpy
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PKG_DIR = Path(__file__).resolve().parent
# variables that differ per invocation without changing what an import does
_VOLATILE_ENV = ("PWD", "OLDPWD", "SHLVL", "_", "PYTEST_CURRENT_TEST")
_VOLATILE_PREFIXES = ("DVC_",)
DEFAULT_IDLE_S = 120.0


def _debug(msg: str) -> None:
    if os.environ.get("ARKBENCH_LOG", "").upper() == "DEBUG":
        print(f"DEBUG arkbench.warm: {msg}", file=sys.stderr, flush=True)


def enabled(env: dict[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if env.get("ARKBENCH_WARM", "on").strip().lower() in ("off", "0", "false", "no"):
        return False
    if "LOCAL_RANK" in env or int(env.get("ARKBENCH_NPROC_PER_NODE", "1") or 1) > 1:
        return False   # torchrun starts its own processes
    return hasattr(socket, "send_fds") and hasattr(os, "fork")


def _stat_tree(root: Path) -> list[tuple[str, int, int]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                out.append((os.path.join(dirpath, name), st.st_mtime_ns, st.st_size))
    return out


def fingerprint(cwd: str, env: dict[str, str], code_roots: list[Path] | None = None) -> str:
    """The server key: changes whenever what a server has imported could differ from disk."""
    roots = [PKG_DIR, Path(cwd) / "stages"] if code_roots is None else code_roots
    h = hashlib.sha256()
    env_kept = sorted((k, v) for k, v in env.items()
                      if k not in _VOLATILE_ENV and not k.startswith(_VOLATILE_PREFIXES))
    h.update(json.dumps([sys.executable, sys.version, os.path.realpath(cwd), env_kept]).encode())
    for root in roots:
        if root.is_dir():
            h.update(json.dumps(_stat_tree(root)).encode())
    for p in sys.path[1:]:   # site-packages etc. (pip install changes their mtime); [0] is cwd or the script's folder
        try:
            h.update(f"{p}:{os.stat(p or '.').st_mtime_ns}".encode())
        except OSError:
            h.update(f"{p}:-".encode())
    return h.hexdigest()[:24]


def socket_dir() -> str | None:
    """<tmp>/arkbench-warm-<uid>, a folder only this user can enter (None if it is anyone else's).

    A socket path other users could create first would let them pose as the server and read
    the environment a client sends; so the sockets live in a 0700 folder owned by this user.
    """
    import stat

    d = os.path.join(tempfile.gettempdir(), f"arkbench-warm-{os.getuid()}")
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return d


def socket_path(key: str) -> str | None:
    d = socket_dir()
    return None if d is None else os.path.join(d, f"{key}.sock")


# --------------------------------------------------------------------------- the stage, run
def run_script(argv: list[str]) -> int:
    """Run argv[0] as `__main__` the way `python SCRIPT ARGS` would; return its exit status."""
    import traceback

    script = argv[0]
    if not os.path.isfile(script):   # what `python SCRIPT` says and does
        print(f"{sys.executable}: can't open file {os.path.abspath(script)!r}: [Errno 2] No such file or directory",
              file=sys.stderr)
        return 2
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(os.path.abspath(script))   # `python SCRIPT` puts the script's folder first
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 128 + signal.SIGINT
    except BaseException:  # noqa: BLE001 - report like the interpreter does
        traceback.print_exc()
        code = 1
    return code


def _finish_like_interpreter(code: int) -> None:
    """What Python does at exit (join non-daemon threads, atexit, flush), then _exit."""
    import atexit
    import threading

    try:
        threading._shutdown()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        pass
    try:
        atexit._run_exitfuncs()
    except Exception:  # noqa: BLE001
        pass
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)


# --------------------------------------------------------------------------- client
def _send(conn: socket.socket, argv: list[str]) -> None:
    payload = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(-1)
    present = [fd for fd in fds if fd >= 0]
    mask = sum(1 << i for i, fd in enumerate(fds) if fd >= 0)
    socket.send_fds(conn, [struct.pack("!IB", len(payload), mask)], present)
    conn.sendall(payload)


def _start_server(path: str) -> None:
    """Start a server for `path` in the background unless one is alive (starting or serving)."""
    import fcntl

    try:
        with open(path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)   # free: no server holds it
            fcntl.flock(lock, fcntl.LOCK_UN)
    except OSError:
        return   # a server is starting or serving
    with open(path + ".log", "ab") as log:   # the server's own messages (ARKBENCH_LOG=DEBUG), for diagnosis
        subprocess.Popen([sys.executable, "-m", "arkbench.warm", "--serve", path, str(os.getpid())],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True)
    _debug(f"started a server for {path}")


def _run_warm(path: str, argv: list[str]) -> int | None:
    """Run on the server at `path`; None when there is none (the caller then runs cold)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        _send(conn, argv)
        f = conn.makefile("rb")
        first = f.readline()
    except OSError:
        conn.close()
        return None
    if not first:
        conn.close()
        return None   # the server went away before starting the stage: nothing ran
    pid = json.loads(first)["pid"]
    _debug(f"{argv[0]} runs warm as pid {pid}")

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, forward)
    line = f.readline()
    conn.close()
    if not line:
        print(f"arkbench.warm: the warm server died while running {argv[0]} (pid {pid})", file=sys.stderr)
        return 1
    return int(json.loads(line)["exit"])


# set before anything imports torch (a cold run here, the server it starts): see arkbench.stage.ENV_DEFAULTS
EARLY_ENV_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def server_socket(cwd: str, env: dict[str, str]) -> str | None:
    """The socket of the server a client in `cwd` with environment `env` uses."""
    return socket_path(fingerprint(cwd, {**EARLY_ENV_DEFAULTS, **env}))


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    for k, v in EARLY_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)
    if enabled():
        path = server_socket(os.getcwd(), dict(os.environ))
        if path is None:
            _debug(f"no private folder for the sockets under {tempfile.gettempdir()}: running cold")
        else:
            code = _run_warm(path, argv)
            if code is not None:
                return code
            _start_server(path)
    _debug(f"{argv[0]} runs cold")
    code = run_script(argv)
    _finish_like_interpreter(code)
    return code   # pragma: no cover - _finish_like_interpreter exits


# --------------------------------------------------------------------------- server
def preload_modules(stages_dir: Path) -> list[str]:
    """Top-level absolute imports of every stage script, what the tracking worker opens, and the
    libraries stages import lazily inside their work."""
    import ast

    names: list[str] = []
    for p in sorted(stages_dir.glob("*.py")):
        try:
            tree = ast.parse(p.read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    names += ["torch._dynamo",   # imported lazily by the first optimizer or init op: ~2-4 s
              "arkbench.tracking", "arkbench.tracking.worker", "mlflow", "mlflow.entities",
              "mlflow.store.tracking.sqlalchemy_store", "psutil",
              # imported lazily inside the stages' work, never at a stage script's top (seconds each after
              # everything above, load 5): transformers 1.9 + modeling_utils 4.6 (every tokenizer / HF model),
              # evaluate 2.2 (every GLUE/SQuAD metric: 25 smoke stages), sklearn 2.6 (probes, captioning's
              # domain classifier), matplotlib.pyplot 1.8 (every plot), spacy 1.9 (captioning_graphs)
              "transformers", "transformers.modeling_utils", "evaluate", "sklearn.linear_model",
              "sklearn.model_selection", "matplotlib.pyplot", "spacy"]
    return list(dict.fromkeys(names))


def _preload(cwd: str) -> None:
    import importlib

    for name in preload_modules(Path(cwd) / "stages"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a stage that needs it will say why, cold
            pass
    try:   # what the registries load on first lookup: every paper's plugins, tasks and params schemas
        from arkbench import papers

        papers.import_plugins()
        papers.import_tasks()
        for mod in set(papers.section_owners().values()):
            importlib.import_module(mod)
    except Exception:  # noqa: BLE001
        pass


def _child(conn: socket.socket, others: list[socket.socket], fds: list[int], req: dict) -> None:
    """In the forked child: become the client's process, run the script, exit."""
    code = 1
    try:
        for s in others:
            s.close()
        conn.close()
        for target, fd in zip((0, 1, 2), fds):
            if fd >= 0:
                os.dup2(fd, target)
                os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(s, signal.SIG_DFL)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        import random

        random.seed()   # a fresh process's `random` is seeded from the OS, not copied from a parent
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        stage_mod = sys.modules.get("arkbench.stage")
        if stage_mod is not None:
            stage_mod.apply_env_defaults()   # the child's environment is the client's: apply them again
        if os.isatty(1):
            sys.stdout.reconfigure(line_buffering=True)   # as a fresh interpreter on a terminal
        code = run_script(req["argv"])
    finally:
        _finish_like_interpreter(code)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def serve(path: str, idle_s: float, starter: int = 0) -> int:
    """Serve at `path` until idle for `idle_s` seconds; never idle while `starter` (the cold client) lives."""
    import fcntl
    import select
    import threading

    def stop(signum, _frame):
        raise SystemExit(128 + signum)   # unwinds through `finally`: the socket file is removed

    signal.signal(signal.SIGTERM, stop)

    lock = open(path + ".lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0   # another server has this key
    cwd = os.getcwd()
    t0 = time.monotonic()
    _preload(cwd)
    _debug(f"server {os.getpid()}: preloaded {len(sys.modules)} modules in {time.monotonic() - t0:.1f}s")
    if threading.active_count() > 1:   # fork would copy one thread of several: not safe
        _debug(f"server {os.getpid()}: not serving, an import started threads {threading.enumerate()}")
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(16)
    running: dict[int, socket.socket | None] = {}   # child pid -> its client's connection (None: gone)
    last = time.monotonic()
    try:
        while running or time.monotonic() - last < idle_s:
            if starter and _alive(starter):
                last = time.monotonic()
            if not os.path.isdir(cwd):
                break   # the repository is gone (a test's temporary folder)
            conns = [c for c in running.values() if c is not None]
            ready, _, _ = select.select([srv, *conns], [], [], 0.1)
            for s in ready:
                if s is srv:
                    conn, _ = srv.accept()
                    try:
                        msg, fds, _flags, _addr = socket.recv_fds(conn, 5, 3)
                        n, mask = struct.unpack("!IB", msg)
                        buf = b""
                        while len(buf) < n:
                            chunk = conn.recv(n - len(buf))
                            if not chunk:
                                raise OSError("client closed")
                            buf += chunk
                        req = json.loads(buf)
                    except (OSError, ValueError, struct.error):
                        conn.close()
                        continue
                    it = iter(fds)
                    slots = [next(it) if mask & (1 << i) else -1 for i in range(3)]
                    pid = os.fork()
                    if pid == 0:
                        _child(conn, [srv, *conns], slots, req)
                    for fd in fds:
                        os.close(fd)
                    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                    running[pid] = conn
                else:   # a client sends nothing after its request: readable means it closed (killed)
                    for pid, c in list(running.items()):
                        if c is s and not s.recv(1):
                            s.close()
                            running[pid] = None
                            try:
                                os.kill(pid, signal.SIGTERM)
                            except ProcessLookupError:
                                pass
            for pid, c in list(running.items()):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    if c is not None:
                        try:
                            c.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
                        except OSError:
                            pass
                        c.close()
                    del running[pid]
                    last = time.monotonic()
    finally:
        try:
            os.unlink(path)   # ours: no other server can hold this key while we hold the lock
        except OSError:
            pass
        srv.close()
    return 0


def _exit_like(code: int) -> None:
    """Exit with `code`; a negative one (the stage was killed by signal -code) by that signal."""
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        sys.exit(serve(sys.argv[2], float(os.environ.get("ARKBENCH_WARM_IDLE", DEFAULT_IDLE_S)),
                       int(sys.argv[3]) if len(sys.argv) > 3 else 0))
    _exit_like(main(sys.argv[1:]))
