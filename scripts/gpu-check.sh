#!/usr/bin/env bash
# The GPU check, in two halves.
#   scripts/gpu-check.sh build   here (Rust, no GPU): builds the release binary and the CUDA
#                                parity test into gpu-bundle/ (stripped, under 64 MiB).
#   scripts/gpu-check.sh run     on the GPU machine (no Rust, no network; CUDA 13 and PyTorch):
#                                chainrule info, the parity suite, train on the shipped data on
#                                GPU and CPU, chainrule bench beside PyTorch eager; a table last.
# Full logs go to $OUT (or gpu-out/) as well.
set -uo pipefail
cd "$(dirname "$0")/.."
bundle=gpu-bundle

if [ "${1:-}" = build ]; then
  set -e
  cargo build --release
  tests=$(cargo test --release --no-run --message-format=json --test cuda_parity 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="cuda_parity": print(m["executable"])')
  rm -rf "$bundle" && mkdir -p "$bundle"
  cp target/release/chainrule "$bundle/"
  cp "$tests" "$bundle/cuda_parity"
  cp scripts/torch_bench.py scripts/jax_bench.py scripts/gpu_summary.py scripts/kernel_times.py \
    scripts/nccl_probe.py "$bundle/"
  strip "$bundle/chainrule" "$bundle/cuda_parity"
  # torchao's float8 training, the FP8 baseline, if its wheel can be fetched here (one abi3
  # wheel for every Python 3.9+; whether it suits the GPU machine's PyTorch shows there).
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version 3.10 -d "$bundle/wheels" torchao 2>/dev/null || echo "no torchao wheel: the float8 baseline will not run"
  du -sh "$bundle"
  exit 0
fi

[ "${1:-}" = run ] || { echo "usage: scripts/gpu-check.sh build | run [SECTIONS]" >&2; exit 2; }
# SECTIONS (comma-separated, default all but profile and nccl): parity, train, cpu-train, remat,
# bench, baselines; profile (ncu kernel times of the 8192 bf16 step), nccl (version, bus bandwidth).
sections=${2:-parity,train,cpu-train,remat,bench,baselines}
has() { [[ ",$sections," == *",$1,"* ]]; }
out=${OUT:-gpu-out}
mkdir -p "$out"
exec > >(tee "$out/gpu-check.log") 2>&1
nvidia-smi || true
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
# cuBLAS 13 may be off the loader path: find it (system CUDA or PyTorch's wheels).
lib=$( (ls /usr/local/cuda*/lib64/libcublas.so.13 /usr/lib/x86_64-linux-gnu/libcublas.so.13 2>/dev/null;
        python3 -c 'import nvidia, os; [print(os.path.join(r, f)) for p in nvidia.__path__ for r, _, fs in os.walk(p) for f in fs if f.startswith("libcublas.so.13")]' 2>/dev/null) | head -n 1)
[ -n "$lib" ] && export LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "libcublas: ${lib:-not found}"
# NCCL (data-parallel jobs) likewise: PyTorch's wheel carries libnccl.so.2.
nccl=$( (ls /usr/lib/x86_64-linux-gnu/libnccl.so.2 /usr/local/cuda*/lib64/libnccl.so.2 2>/dev/null;
        python3 -c 'import nvidia, os; [print(os.path.join(r, f)) for p in nvidia.__path__ for r, _, fs in os.walk(p) for f in fs if f == "libnccl.so.2"]' 2>/dev/null) | head -n 1)
[ -n "$nccl" ] && export LD_LIBRARY_PATH="$(dirname "$nccl"):$LD_LIBRARY_PATH"
echo "libnccl: ${nccl:-not found}"
cr=$bundle/chainrule
chmod +x $cr $bundle/cuda_parity
$cr info
export PYTHONUNBUFFERED=1

parity="not run"
if has parity; then
  echo "== parity suite (GPU against CPU)"
  $bundle/cuda_parity --include-ignored --nocapture --test-threads=1 2>&1 | tee "$out/parity.log"
  parity=$(grep -E "^test result" "$out/parity.log" | tail -n 1)
  grep -q "this test needs a GPU" "$out/parity.log" && parity="NO GPU: $parity"
fi

if has train; then
  echo "== train on the shipped data on the GPU: f32, bf16, f16, fp8"
  for dtype in f32 bf16 f16 fp8; do
    $cr train --device cuda --dtype $dtype --metrics-out "$out/train-cuda-$dtype.jsonl" | tail -n 2 || echo "train --dtype $dtype failed"
  done
  # Replayed as a captured CUDA graph (issue 12): the same run, so the same accuracy.
  $cr train --device cuda --dtype bf16 --cuda-graph on --metrics-out "$out/train-cuda-bf16-graph.jsonl" | grep -E "cuda graph|epoch  30" 
fi
if has cpu-train; then
  echo "== train on the shipped data on the CPU"
  $cr train --device cpu --metrics-out "$out/train-cpu-f32.jsonl" | tail -n 2
fi

# The step PyTorch's and JAX's baselines time, and the one every figure before issue 23 used:
# plain SGD at lr 1e-3, no momentum, weight decay or dropout (the tools now default to train's
# AdamW with dropout 0.1, so the flags are spelled out).
plain_sgd="--optimizer sgd --momentum 0 --weight-decay 0 --dropout 0 --lr 0.001"
if has remat; then
  echo "== checkpointing on the GPU"
  $cr remat --device cuda $plain_sgd --depth 8,16,32,64 --width 1024 --batch-size 256 --policies none,cheap,sqrt,revolve:4 --steps 5 --out "$out/remat" | tail -n 20
  $cr scale --device cuda $plain_sgd --depth 256 --width 256 --memory-limit 1GiB --policies none,sqrt,revolve:4,budget --steps 2 --sweep-from 1024 --out "$out/scale" | tail -n 4
  # Residual GELU blocks (issue 24's CPU figure, on the GPU): the norms' row kernels under every policy.
  $cr remat --device cuda --block residual --activation gelu --depth 32 --width 1024 --batch-size 512 --update-in-backward \
    --policies none,cheap,sqrt,revolve:4 --steps 5 --out "$out/remat-blocks" | tail -n 6
fi

small="784-1024-1024-1024-10 256 100 10"
large="8192-8192-8192-8192-10 8192 10 3"
if has bench; then
  echo "== chainrule bench"
  rm -f "$out/bench.jsonl"
  run_cr() { $cr bench --device cuda $plain_sgd --layers "$1" --batch-size "$2" --steps "$3" --warmup "$4" $5 --json | python3 -c '
import json,sys; d=json.load(sys.stdin); d["impl"]="chainrule"; d["mode"]=sys.argv[1]; d["tflops"]=d["gflops"]/1e3; print(json.dumps(d))' "$6" >> "$out/bench.jsonl"; }
  for cfg in "$small" "$large"; do
    set -- $cfg
    run_cr "$1" "$2" "$3" "$4" "" f32
    run_cr "$1" "$2" "$3" "$4" "--tf32" tf32
    run_cr "$1" "$2" "$3" "$4" "--dtype bf16" bf16
    run_cr "$1" "$2" "$3" "$4" "--dtype f16" f16
    # FP8 products where their sides are multiples of 16 (issue 26; needs compute capability 8.9+).
    run_cr "$1" "$2" "$3" "$4" "--dtype fp8" fp8 || echo "bench --dtype fp8 failed"
    # The same steps replayed as one captured CUDA graph (issue 12).
    run_cr "$1" "$2" "$3" "$4" "--cuda-graph on" f32+graph
    run_cr "$1" "$2" "$3" "$4" "--dtype bf16 --cuda-graph on" bf16+graph
  done
fi

if has baselines; then
  echo "== baselines: PyTorch eager, torch.compile, JAX jit, cuBLAS"
  rm -f "$out/baselines.jsonl"
  pt() { timeout 150 python3 $bundle/torch_bench.py "$@" >> "$out/baselines.jsonl" || echo "torch_bench.py $* failed or timed out"; }
  jx() { timeout 120 python3 $bundle/jax_bench.py "$@" >> "$out/baselines.jsonl" || echo "jax_bench.py $* failed or timed out"; }
  for cfg in "$small" "$large"; do
    set -- $cfg
    for mode in f32 tf32 bf16 f16; do pt "$1" "$2" "$mode" "$3" "$4" eager; done
  done
  for mode in tf32 bf16; do pt 0 0 "$mode" 0 0; done
  pt products 8192
  for cfg in "$small" "$large"; do
    set -- $cfg
    for mode in f32 bf16; do jx "$1" "$2" "$mode" "$3" "$4"; done
  done
  # torch.compile where the GPU issue's targets name it, last: each compile takes tens of
  # seconds (TORCH_BENCH_COMPILE=all adds the default mode on the small model).
  set -- $small
  for mode in f32 bf16; do pt "$1" "$2" "$mode" "$3" "$4" compile-ro; done
  [ "${TORCH_BENCH_COMPILE:-}" = all ] && for mode in f32 bf16; do pt "$1" "$2" "$mode" "$3" "$4" compile; done
  set -- $large
  pt "$1" "$2" bf16 "$3" "$4" compile
  # torchao float8 (compiled, as torchao advises), from the carried wheel.
  if ls $bundle/wheels/torchao-*.whl >/dev/null 2>&1; then
    python3 -m pip install --quiet --no-deps --no-index --target "$out/py" $bundle/wheels/torchao-*.whl \
      && PYTHONPATH="$out/py${PYTHONPATH:+:$PYTHONPATH}" pt "$1" "$2" float8 "$3" "$4" compile \
      || echo "torchao float8 baseline did not run"
  fi
fi

if has profile; then
  echo "== kernel times of the 8192 bf16 and f32 steps (ncu, clocks left alone)"
  for dtype in bf16 f32; do
    timeout 240 ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
      $cr bench --device cuda $plain_sgd --layers 8192-8192-8192-8192-10 --batch-size 8192 --steps 3 --warmup 1 \
      --dtype $dtype > "$out/ncu-$dtype.csv" 2> "$out/ncu-$dtype.err" || tail -n 5 "$out/ncu-$dtype.err"
    python3 $bundle/kernel_times.py "$out/ncu-$dtype.csv" 4 || true
  done
fi
if has nccl; then
  echo "== NCCL"
  timeout 150 python3 $bundle/nccl_probe.py | tee "$out/nccl.jsonl" || echo "nccl_probe.py failed or timed out"
fi

echo
echo "== summary ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1))"
echo "parity: $parity"
python3 $bundle/gpu_summary.py "$out"
