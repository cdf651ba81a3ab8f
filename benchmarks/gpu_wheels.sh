#!/usr/bin/env bash
# Run HERE, before a session's GPU check: downloads into .whl/ (git-ignored through
# .git/info/exclude) the wheels netspec needs that the lent GPU machine's image lacks
# (pydantic and jsonschema with their own needs, torchinfo; torch, torchvision, torchmetrics,
# pyyaml and the rest are there). The versions are this checkout's .venv's.
#
#   bash benchmarks/gpu_wheels.sh && du -sh .whl      # then benchmarks/gpu_check.sh, carried with .whl
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude || echo '/.whl/' >> .git/info/exclude
version() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('$1'))"; }
wanted=()
for name in pydantic pydantic-core annotated-types typing-inspection typing-extensions jsonschema jsonschema-specifications referencing rpds-py torchinfo; do
    wanted+=("$name==$(version "$name")")
done
rm -rf .whl
platforms=()
for n in 28 27 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" --platform manylinux2014_x86_64 --platform any -d .whl "${wanted[@]}"
ls .whl
