# syntax=docker/dockerfile:1
# arkbench GPU image: the whole benchmark with one `docker compose run --rm pipeline`.
# Build needs BuildKit (default in Docker >= 23) for the pip cache mount below.
#
# Base: official PyTorch image with CUDA + cuDNN, pinned to an exact tag (never `latest`)
# so a rebuild gets the same torch/CUDA. Ubuntu 22.04, Python 3.11 in /opt/conda.
# Needs an NVIDIA driver >= 570 on the host (CUDA 12.8); for older drivers pick the
# matching `2.9.0-cuda12.6-cudnn9-runtime` tag instead.
FROM pytorch/pytorch:2.9.0-cuda12.8-cudnn9-runtime

# A failing command anywhere in a pipe fails the build (e.g. no torch found below).
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# git: DVC reads the pipeline's git state (dvc.lock, params diff, experiments).
# Ubuntu's security updates replace old git versions, so pinning one would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*

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

# --- dependencies layer (cached until pyproject.toml / constraints.txt change) ---------
# constraints.txt pins torch==<CPU wheel> for CPU machines and CI. Here the torch line is
# dropped and replaced by the torch the base image ships (CUDA build, e.g. 2.9.0+cu128):
# pip then keeps that build instead of replacing it with a CPU wheel, and fails loudly
# rather than silently swapping torch if a pinned package needs a newer one.
COPY pyproject.toml constraints.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    grep -v '^torch==' constraints.txt > /tmp/constraints-image.txt \
    && python -m pip list --format=freeze | grep '^torch==' >> /tmp/constraints-image.txt \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && python -m pip install -r /tmp/requirements.txt -c /tmp/constraints-image.txt

# Optional DVC remote backends, e.g. `--build-arg DVC_EXTRAS=s3,gs,ssh` (docs/remotes.md).
ARG DVC_EXTRAS=""
RUN --mount=type=cache,target=/root/.cache/pip \
    if [ -n "$DVC_EXTRAS" ]; then \
        python -m pip install "dvc[${DVC_EXTRAS}]" -c /tmp/constraints-image.txt; \
    fi

# --- the package itself (cheap layer; deps already satisfied) -----------------------------
# README* is a glob so a missing README does not fail the build.
COPY README* ./
COPY src/ src/
RUN --mount=type=cache,target=/root/.cache/pip \
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
