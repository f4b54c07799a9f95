#!/usr/bin/env bash
# The Python packages a GPU machine of the device tool lacks (its image has torch, lightning,
# torchmetrics, h5py, scikit-learn, joblib, ...; see the tool's KINDS.md), carried as wheels.
#   bash scripts/device_wheels.sh download   # here (PyPI reachable): wheels into $WHEELS (.device_wheels/)
#   bash scripts/device_wheels.sh install    # there (no registry): pip install --no-index --no-deps
#   bash scripts/device_wheels.sh rehearse   # here: the install step for the device's Python 3.12
#                                            # into a scratch folder, then import what this Python can
# Versions are the ones this checkout's venv tests with (read from $PY). The device runs Python 3.12
# on x86_64 Linux, so binary wheels are fetched for that ABI; antlr4-python3-runtime 4.9.3 exists on
# PyPI only as a source archive and is built into a pure-Python wheel here.
set -euo pipefail

PY=${PY:-.venv/bin/python}
WHEELS=${WHEELS:-.device_wheels}
TARGET=(--python-version 3.12 --implementation cp --platform manylinux2014_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --only-binary=:all:)
# hydra, its grammar runtime and the joblib launcher (hydra/launcher=gpu_pack); wandb and those of its dependencies the image lacks
PACKAGES=(hydra-core omegaconf hydra-joblib-launcher wandb
          pydantic pydantic-core annotated-types typing-inspection platformdirs sniffio distro cwevals
          googleapis-common-protos opentelemetry-api opentelemetry-sdk opentelemetry-proto
          opentelemetry-semantic-conventions opentelemetry-exporter-otlp-proto-http
          opentelemetry-exporter-otlp-proto-common opentelemetry-exporter-http-transport
          opentelemetry-exporter-otlp-common)

pinned() {  # NAME==VERSION as installed in $PY's environment
    "$PY" -c "import sys, importlib.metadata as m; print(f'{sys.argv[1]}=={m.version(sys.argv[1])}')" "$1"
}

case "${1:-}" in
download)
    mkdir -p "$WHEELS"
    specs=()
    for name in "${PACKAGES[@]}"; do specs+=("$(pinned "$name")"); done
    "$PY" -m pip download --no-deps -q -d "$WHEELS" "${TARGET[@]}" "${specs[@]}"
    "$PY" -m pip wheel --no-deps -q -w "$WHEELS" "$(pinned antlr4-python3-runtime)"
    ls "$WHEELS"/*.whl | wc -l | xargs echo "wheels:"
    du -sh "$WHEELS"
    ;;
install)
    python3 -m pip install --no-index --no-deps -q "$WHEELS"/*.whl
    python3 -m pip install --no-index --no-deps --no-build-isolation -q -e .
    python3 -c "import hydra, omegaconf, hydra_plugins.hydra_joblib_launcher, src.train; print('hydra', hydra.__version__)"
    ;;
rehearse)
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/device_wheels.XXXXXX")
    "$PY" -m pip install --no-index --no-deps -q --target "$scratch" "${TARGET[@]}" "$WHEELS"/*.whl
    PYTHONPATH="$scratch" python3 -I -c "
import sys; sys.path.insert(0, '$scratch')
import antlr4, omegaconf, hydra, hydra_plugins.hydra_joblib_launcher.joblib_launcher as j
print('installed for Python 3.12 into', '$scratch', '; imported here: hydra', hydra.__version__, 'omegaconf', omegaconf.__version__)"
    ls "$scratch" | grep -c dist-info | xargs echo "dist-info folders:"
    rm -rf "$scratch"
    ;;
*)
    echo "usage: bash scripts/device_wheels.sh download|install|rehearse" >&2
    exit 2
    ;;
esac
