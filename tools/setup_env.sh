#!/usr/bin/env bash
# Set up this checkout's environment; cheap to repeat (make train / make test run it).
#
# 1. Once per machine: a venv with requirements/lock.txt, all from wheels (torch,
#    torchvision, mmengine, mmdet, mmcv-lite), plus backend/mmcv_ext.py copied to
#    mmcv/_ext.py: the compiled functions mmdet's Faster R-CNN path calls (NMS, RoIAlign,
#    RoIPool) on torchvision's kernels. Nothing is compiled. Cached in $FRCNN_CACHE_DIR
#    (default ~/.cache/frcnn_plugin) under a key hashed from the pins, the Python version
#    and the mmcv flavour; the backend file is copied again whenever it changed.
# 2. Per checkout: .venv, a thin venv whose .pth adds the cached site-packages and into
#    which this checkout's frcnn_plugin is installed editable. Every checkout imports its
#    own frcnn_plugin; the shared cache never points at one of them.
#
# Environment: PYTHON (default python3.11), FRCNN_CACHE_DIR,
# MMCV_OPS=lite (default) | compiled: compiled mmcv instead of mmcv-lite and the backend,
#   for models whose ops the backend lacks: built from its sdist with a C++ compiler
#   (requirements/mmcv-compiled.txt: 10-20 min, and an older torch); on a GPU machine
#   with its CUDA kernels unless MMCV_CUDA_OPS=0. MAX_JOBS: parallel jobs of that build.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
CACHE=${FRCNN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/frcnn_plugin}
REQ=$ROOT/requirements
SETUP_VERSION=2  # bump when the steps below change what they build

say() { echo "[setup_env] $*"; }
die() { echo "[setup_env] error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=/path/to/python3.11)"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$pyver" = 3.11 ] || say "warning: the lock file is tested with Python 3.11, $PYTHON is $pyver"

MMCV_OPS=${MMCV_OPS:-lite}
case $MMCV_OPS in
    lite) flavour=lite ;;
    compiled)
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 \
                && [ "${MMCV_CUDA_OPS:-1}" != 0 ]; then
            flavour=compiled-cuda  # the kernels mmcv is compiled with
        else
            flavour=compiled-cpu
        fi ;;
    *) die "MMCV_OPS=$MMCV_OPS: lite (the default: mmcv-lite with backend/mmcv_ext.py) or compiled" ;;
esac

key=$({ echo "$SETUP_VERSION $pyver $flavour $(uname -m)"
        cat "$REQ/lock.txt"
        [ "$flavour" = lite ] || cat "$REQ/mmcv-compiled.txt"; } | sha256sum | cut -c1-16)
venv=$CACHE/venv-$key
mkdir -p "$CACHE/logs"
log=$CACHE/logs/venv-$key.log
pip_install=("$venv/bin/python" -m pip install --disable-pip-version-check)

# The torch family and mmcv-lite, which MMCV_OPS=compiled takes from mmcv-compiled.txt.
REPLACED_WHEN_COMPILED='^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z-]+|mmcv-lite)=='

install_lite() {
    say "installing requirements/lock.txt (torch and its Linux wheels: a few GB)"
    "${pip_install[@]}" -r "$REQ/lock.txt" >"$log" 2>&1 \
        || { tail -30 "$log"; die "pip install -r requirements/lock.txt failed"; }
    install_backend
}

# This checkout's backend/mmcv_ext.py as the cached venv's mmcv/_ext.py, on every run (a
# copy, not a link: the cache never points at a checkout).
install_backend() {
    local ext
    ext=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/mmcv/_ext.py
    cmp -s "$ROOT/backend/mmcv_ext.py" "$ext" || install -m 644 "$ROOT/backend/mmcv_ext.py" "$ext"
}

install_compiled() {
    local mmcv_pin torch_pin wheels gpu_env=()
    mmcv_pin=$(grep -E '^mmcv==' "$REQ/mmcv-compiled.txt")
    torch_pin=$(grep -E '^torch==' "$REQ/mmcv-compiled.txt")
    wheels=$CACHE/wheels/${mmcv_pin/==/-}-${torch_pin/==/-}-py$pyver-$flavour-$(uname -m)
    say "installing requirements/lock.txt with requirements/mmcv-compiled.txt's torch"
    "${pip_install[@]}" -r <(grep -vE "$REPLACED_WHEN_COMPILED" "$REQ/lock.txt"
                             grep -vE '^mmcv==' "$REQ/mmcv-compiled.txt") >"$log" 2>&1 \
        || { tail -30 "$log"; die "pip install failed"; }
    if ! ls "$wheels"/mmcv-*.whl >/dev/null 2>&1; then
        say "building $mmcv_pin from source ($flavour): 7 min on an idle 2-core machine," \
            "20+ under load (see $log)"
        rm -rf "$wheels.part"
        # --no-cache-dir: pip's own wheel cache keys on the sdist alone, CPU or CUDA alike.
        # mmcv's setup.py compiles CUDA kernels when torch sees a GPU (or FORCE_CUDA=1).
        [ "$flavour" = compiled-cpu ] && gpu_env=(CUDA_VISIBLE_DEVICES= FORCE_CUDA=0)
        env "${gpu_env[@]}" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "$venv/bin/python" -m pip wheel \
            --no-cache-dir --no-build-isolation --no-deps --no-binary mmcv -w "$wheels.part" \
            "$mmcv_pin" \
            >>"$log" 2>&1 || { tail -30 "$log"; die "building $mmcv_pin failed"; }
        mv "$wheels.part" "$wheels"
    fi
    "${pip_install[@]}" --no-deps "$wheels"/mmcv-*.whl >>"$log" 2>&1 \
        || { tail -30 "$log"; die "installing the mmcv wheel failed"; }
}

build_venv() {
    local t0=$SECONDS
    say "creating $venv (once per machine; see $log)"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    if [ "$flavour" = lite ]; then install_lite; else install_compiled; fi
    "$venv/bin/python" - <<'EOF' || die "the new environment does not work (see above)"
import torch, torchvision.ops, mmcv.ops, mmdet, mmengine
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.]])
scores = torch.tensor([0.9, 0.8])
assert torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0]
assert mmcv.ops.nms(boxes, scores, 0.5)[1].tolist() == [0]
print('torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__,
      '| mmengine', mmengine.__version__, '| mmcv ops:', mmcv.ops.get_compiler_version())
EOF
    "$venv/bin/python" -m pip check --disable-pip-version-check >>"$log" 2>&1 \
        || { tail -5 "$log"; die "pip check found broken requirements (see $log)"; }
    touch "$venv/.complete"
    say "environment ready in $((SECONDS - t0)) s"
}

(
    flock 9  # one setup at a time per machine: a second clone waits, then reuses
    [ -f "$venv/.complete" ] || build_venv
    [ "$flavour" != lite ] || install_backend
) 9>"$CACHE/.lock"

# The thin per-checkout venv.
if [ ! -x "$ROOT/.venv/bin/python" ] || [ -L "$ROOT/.venv" ]; then
    rm -rf "$ROOT/.venv"
    "$PYTHON" -m venv --without-pip "$ROOT/.venv"
fi
site=$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
cached_site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
echo "import site; site.addsitedir('$cached_site')" >"$site/_frcnn_plugin_env.pth"
owner=$(cd / && "$ROOT/.venv/bin/python" -c \
    'import importlib.util as u; s = u.find_spec("frcnn_plugin"); print(s.origin if s else "")')
if [ "$owner" != "$ROOT/frcnn_plugin/__init__.py" ]; then
    "$ROOT/.venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT" \
        >"$CACHE/logs/editable.log" 2>&1 \
        || { tail -30 "$CACHE/logs/editable.log"; die "pip install -e . failed"; }
fi
say ".venv/bin/python: this checkout's frcnn_plugin on $venv"
