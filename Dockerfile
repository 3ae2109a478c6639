# arkbench image: the whole benchmark with one `docker compose run --rm pipeline`.
# Build needs BuildKit (default in Docker >= 23; DOCKER_BUILDKIT=1 on Docker 20.10) for the
# cache and secret mounts below. No `# syntax=` line: the builder's built-in Dockerfile
# frontend is enough, and the build then needs no image from a registry besides the base.
#
# Base: official PyTorch image with CUDA + cuDNN, pinned to an exact tag (never `latest`)
# so a rebuild gets the same torch/CUDA. Ubuntu 22.04, Python 3.11 in /opt/conda.
# Needs an NVIDIA driver >= 570 on the host (CUDA 12.8); for older drivers pick the
# matching `2.9.0-cuda12.6-cudnn9-runtime` tag instead.
# BASE_IMAGE swaps the base, e.g. the CPU image scripts/container-check.sh makes from Debian's
# packages (docs/container.md). Everything below works on either: a base needs apt-get and a
# Python >= 3.10, either `python` with pip on PATH (conda) or the system `python3` (a venv is
# made); torch is the base's own build if it has one, else the constraints.txt pin.
ARG BASE_IMAGE=pytorch/pytorch:2.9.0-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

# A failing command anywhere in a pipe fails the build (e.g. no torch found below).
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# git: DVC reads the pipeline's git state (dvc.lock, params diff, experiments).
# python3-venv only where the base has no `python` with pip (a plain Debian/Ubuntu base):
# its system Python is closed to pip (PEP 668), so the packages go into a venv at /opt/venv.
# Security updates replace old package versions, so pinning one would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && if python -m pip --version >/dev/null 2>&1; then venv=""; else venv=python3-venv; fi \
    && apt-get install -y --no-install-recommends git ${venv:+"${venv}"} \
    && rm -rf /var/lib/apt/lists/* \
    && if [ -n "${venv}" ]; then python3 -m venv /opt/venv; fi

# /opt/venv exists only when made above; on the conda base this PATH entry is inert.
ENV PATH=/opt/venv/bin:${PATH}

# Non-root user `arkbench`, uid/gid 1000 (matches the usual first host user, so files written to the
# bind-mounted repo stay owned by them). HOME is world-writable so the image also works
# with `--user <other uid>`; safe.directory stops git rejecting a repo owned by another uid.
RUN (userdel --remove ubuntu 2>/dev/null || true) \
    && groupadd --gid 1000 arkbench \
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash arkbench \
    && mkdir -p /home/arkbench/.cache/huggingface /workspace \
    && chmod 0777 /home/arkbench /home/arkbench/.cache /home/arkbench/.cache/huggingface \
    && chown arkbench:arkbench /workspace \
    && git config --system --add safe.directory /workspace

WORKDIR /opt/arkbench

# Package sources for builds behind a mirror or a TLS-inspecting proxy (unset by default, so
# pip uses PyPI): scripts/container-check.sh passes the host's pip settings this way and the
# host's CA bundle as the secret `pip-cert` (PIP_CERT=/run/secrets/pip-cert).
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT

# --- dependencies layer (cached until pyproject.toml / constraints.txt change) ---------
# constraints.txt pins torch==<CPU wheel> for CPU machines and CI. Here the torch line is
# dropped and replaced by the torch the base image ships (CUDA build, e.g. 2.9.0+cu128):
# pip then keeps that build instead of replacing it with a CPU wheel, and fails loudly
# rather than silently swapping torch if a pinned package needs a newer one. A base without
# torch (the CPU check image) gets the constraints.txt pin back.
COPY pyproject.toml constraints.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pip-cert \
    grep -v '^torch==' constraints.txt > /tmp/constraints-image.txt \
    && { python -m pip list --format=freeze | grep '^torch==' || grep '^torch==' constraints.txt; } \
        >> /tmp/constraints-image.txt \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && python -m pip install -r /tmp/requirements.txt -c /tmp/constraints-image.txt

# Optional DVC remote backends, e.g. `--build-arg DVC_EXTRAS=s3,gs,ssh` (docs/remotes.md).
ARG DVC_EXTRAS=""
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pip-cert \
    if [ -n "$DVC_EXTRAS" ]; then \
        python -m pip install "dvc[${DVC_EXTRAS}]" -c /tmp/constraints-image.txt; \
    fi

# --- the package itself (cheap layer; deps already satisfied) -----------------------------
# README* is a glob so a missing README does not fail the build.
COPY README* ./
COPY src/ src/
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pip-cert \
    python -m pip install --no-deps .

# Third-party libraries stay offline by default (benchmarks must not depend on the Hub);
# override with `-e HF_HUB_OFFLINE=0 ...` or in docker-compose.yml / .env.
# PYTHONPATH: the repo mounted at /workspace wins over the copy installed above, so the
# code DVC hashes as a stage dependency is the code that runs.
# ARKBENCH_NPROC_PER_NODE: >1 makes the stage launcher run training under torchrun (DDP).
ENV HF_HUB_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    HF_EVALUATE_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/home/arkbench/.cache/huggingface \
    HOME=/home/arkbench \
    PYTHONPATH=/workspace/src \
    PYTHONUNBUFFERED=1 \
    DVC_NO_ANALYTICS=1 \
    ARKBENCH_NPROC_PER_NODE=1

USER 1000:1000
# The repository is bind-mounted here (docker-compose.yml): DVC cache (.dvc/cache), MLflow
# store (mlflow.db, mlartifacts/) and reports/ persist on the host.
WORKDIR /workspace

CMD ["dvc", "repro"]
