#!/usr/bin/env bash
# Gather the wheels an offline GPU machine needs to run dlrecipes with
# KERAS_BACKEND=jax (or torch) when it has JAX (or PyTorch), NumPy and h5py
# but no TensorFlow and no network. Run it here, on a machine with network,
# from the project root; carry the project folder (with .whl/) over.
#
#   scripts/fetch-wheels.sh                 # Python 3.12, x86-64 Linux
#   PYTHON_VERSION=3.11 scripts/fetch-wheels.sh
#   scripts/fetch-wheels.sh path/to/dir     # somewhere else than ./.whl
#
# Then, on the GPU machine (see docs/gpu.md):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target .site .whl/*.whl
#   export PYTHONPATH=$PWD/.site:$PWD KERAS_BACKEND=jax
set -euo pipefail
dest=${1:-.whl}
py=${PYTHON_VERSION:-3.12}
mkdir -p "$dest"
if [ -d .git ] && ! grep -qx '/.whl/' .git/info/exclude 2>/dev/null; then
  echo '/.whl/' >> .git/info/exclude
fi
python3 -m pip download -q --no-deps --only-binary=:all: \
  --python-version "$py" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$dest" "keras==${KERAS_VERSION:-3.15.1}" namex optree \
  "keras-tuner==${KERAS_TUNER_VERSION:-1.4.8}" kt-legacy
ls -l "$dest"
