#!/usr/bin/env bash
# Everything the GPU path needs checked, in one call (a lent H200: no network, no TensorFlow; its image
# has Python 3.12, CuPy 14 with NVRTC, NumPy, pybind11, pytest, PyTorch, JAX). Writes every output
# under $OUT and ends with a summary ($OUT/summary.txt). Target: under 8 minutes.
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh
#
# Steps (each with its own time limit; a failed step does not stop the others):
#   install      pip install --no-deps --no-build-isolation -e .   (the image's packages, nothing fetched)
#   config       approxsim show-config
#   precompile   every CUDA module into CuPy's cache, in parallel (benchmarks/gpu_precompile.py)
#   check        approxsim check --backend cuda
#   tests_gpu    the GPU tests of tests/test_cuda.py and tests/test_direct.py (marked gpu; they need no
#                TensorFlow); their CPU-side parts (NVRTC and nvcc compiles, host programs, emulated
#                kernels) run in CI on every machine
#   tests_check  tests/test_check.py
#   sanitizer    compute-sanitizer memcheck and racecheck on benchmarks/gpu_sanitize.py, if installed
#   bench_cuda   benchmarks/bench_cuda.py (cuBLAS through CuPy, cuDNN through PyTorch, TF32 off)
#   bench_direct benchmarks/bench_direct.py --gpu --no-tf
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder for the outputs}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 APPROXSIM_CACHE="$OUT/approxsim-cache"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
START=$(date +%s)

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local t0
  t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local took=$(( $(date +%s) - t0 ))
  local what="ok"
  [ "$rc" -ne 0 ] && what="FAILED (exit $rc)"
  [ "$rc" -eq 124 ] && what="TIMED OUT after ${limit} s"
  printf '%-13s %-28s %4d s   %s\n' "$name" "$what" "$took" "$OUT/$name.log" | tee -a "$SUMMARY"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; } > "$OUT/gpu.txt" 2>&1
step install 240 "$PY" -m pip install --no-deps --no-build-isolation -e .
step config 60 "$PY" -m approxsim.cli show-config
step precompile 240 "$PY" benchmarks/gpu_precompile.py
step check 180 "$PY" -m approxsim.cli check --backend cuda
step tests_gpu 300 "$PY" -m pytest -q -ra -p no:cacheprovider -m "gpu and not slow" tests/test_cuda.py tests/test_direct.py \
  --junitxml="$OUT/tests_gpu.xml"
step tests_check 120 "$PY" -m pytest -q -ra -p no:cacheprovider tests/test_check.py
if command -v compute-sanitizer > /dev/null; then
  step memcheck 180 compute-sanitizer --tool memcheck --error-exitcode 9 "$PY" benchmarks/gpu_sanitize.py
  step racecheck 240 compute-sanitizer --tool racecheck --error-exitcode 9 "$PY" benchmarks/gpu_sanitize.py
else
  echo "sanitizer     not installed (compute-sanitizer not on PATH)" | tee -a "$SUMMARY"
fi
step bench_cuda 300 "$PY" benchmarks/bench_cuda.py
step bench_direct 120 "$PY" benchmarks/bench_direct.py --gpu --no-tf --markdown
echo "total $(( $(date +%s) - START )) s; GPU: $(cat "$OUT/gpu.txt")" | tee -a "$SUMMARY"
grep -q "FAILED\|TIMED OUT" "$SUMMARY" && exit 1
exit 0
