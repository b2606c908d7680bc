#!/usr/bin/env bash
# Set up this checkout's environment; cheap to repeat (make train / make test run it).
#
# 1. Once per machine: a venv with requirements/lock.txt and mmcv built from its sdist
#    (requirements/mmcv.txt), cached in $FRCNN_CACHE_DIR (default ~/.cache/frcnn_plugin)
#    under a key hashed from the pins, Python version and CPU/CUDA. The mmcv wheel is
#    cached too, so a venv rebuilt for another pin reuses it while torch stays the same.
# 2. Per checkout: .venv, a thin venv whose .pth adds the cached site-packages and into
#    which this checkout's frcnn_plugin is installed editable. Every checkout imports its
#    own frcnn_plugin; the shared cache never points at one of them.
#
# Environment: PYTHON (default python3.11), FRCNN_CACHE_DIR, MAX_JOBS (mmcv build),
# MMCV_CUDA_OPS=0 (on a GPU machine: mmcv with its CPU ops only, built in minutes instead
# of 20+; frcnn_plugin's components use none of mmcv's kernels, so an all-Scratch
# detector still trains on the GPU, but mmdet's own RoIAlign / NMS run on the CPU only).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
CACHE=${FRCNN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/frcnn_plugin}
SETUP_VERSION=1  # bump when the steps below change what they build

say() { echo "[setup_env] $*"; }
die() { echo "[setup_env] error: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=/path/to/python3.11)"
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$pyver" = 3.11 ] || say "warning: the lock file is tested with Python 3.11, $PYTHON is $pyver"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    accel=cuda
else
    accel=cpu
fi
mmcv_ops=$accel  # the kernels mmcv is compiled with
if [ "$accel" = cuda ] && [ "${MMCV_CUDA_OPS:-1}" = 0 ]; then
    mmcv_ops=cpu
fi

key=$({ echo "$SETUP_VERSION $pyver $mmcv_ops $(uname -m)"
        cat "$ROOT/requirements/lock.txt" "$ROOT/requirements/mmcv.txt"; } | sha256sum | cut -c1-16)
venv=$CACHE/venv-$key
mmcv_pin=$(grep -E '^mmcv==' "$ROOT/requirements/mmcv.txt")
torch_pin=$(grep -E '^torch==' "$ROOT/requirements/lock.txt")
wheels=$CACHE/wheels/${mmcv_pin/==/-}-${torch_pin/==/-}-py$pyver-$mmcv_ops-$(uname -m)
mkdir -p "$CACHE/logs"

build_venv() {
    local t0=$SECONDS log=$CACHE/logs/venv-$key.log
    say "creating $venv (once per machine; see $log)"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    say "installing requirements/lock.txt (torch and its Linux wheels: a few GB)"
    "$venv/bin/python" -m pip install -r "$ROOT/requirements/lock.txt" >"$log" 2>&1 \
        || { tail -30 "$log"; die "pip install -r requirements/lock.txt failed"; }
    if ! ls "$wheels"/mmcv-*.whl >/dev/null 2>&1; then
        say "building $mmcv_pin from source with compiled $mmcv_ops ops: 7 min on an idle" \
            "2-core machine, 20+ under load (see $log)"
        rm -rf "$wheels.part"
        # --no-cache-dir: pip's own wheel cache keys on the sdist alone, CPU or CUDA alike.
        # mmcv's setup.py compiles CUDA kernels when torch sees a GPU (or FORCE_CUDA=1).
        local gpu_env=()
        [ "$mmcv_ops" = cpu ] && gpu_env=(CUDA_VISIBLE_DEVICES= FORCE_CUDA=0)
        env "${gpu_env[@]}" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "$venv/bin/python" -m pip wheel \
            --no-cache-dir --no-build-isolation --no-deps --no-binary mmcv -w "$wheels.part" \
            "$mmcv_pin" \
            >>"$log" 2>&1 || { tail -30 "$log"; die "building $mmcv_pin failed"; }
        mv "$wheels.part" "$wheels"
    fi
    "$venv/bin/python" -m pip install --no-deps "$wheels"/mmcv-*.whl >>"$log" 2>&1 \
        || { tail -30 "$log"; die "installing the mmcv wheel failed"; }
    "$venv/bin/python" - <<'EOF' || die "the new environment does not work (see above)"
import torch, torchvision.ops, mmcv.ops, mmdet, mmengine
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.]])
scores = torch.tensor([0.9, 0.8])
assert torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0]
assert mmcv.ops.nms(boxes, scores, 0.5)[1].tolist() == [0]
print('torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__,
      '| mmengine', mmengine.__version__)
EOF
    touch "$venv/.complete"
    say "environment ready in $((SECONDS - t0)) s"
}

(
    flock 9  # one setup at a time per machine: a second clone waits, then reuses
    [ -f "$venv/.complete" ] || build_venv
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
