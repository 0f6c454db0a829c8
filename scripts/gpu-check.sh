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
  cp scripts/torch_bench.py "$bundle/"
  strip "$bundle/chainrule" "$bundle/cuda_parity"
  du -sh "$bundle"
  exit 0
fi

[ "${1:-}" = run ] || { echo "usage: scripts/gpu-check.sh build|run" >&2; exit 2; }
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
cr=$bundle/chainrule
chmod +x $cr $bundle/cuda_parity
$cr info

echo "== parity suite (GPU against CPU)"
$bundle/cuda_parity --include-ignored --nocapture --test-threads=1 2>&1 | tee "$out/parity.log"
parity=$(grep -E "^test result" "$out/parity.log" | tail -n 1)
grep -q "this test needs a GPU" "$out/parity.log" && parity="NO GPU: $parity"

echo "== train on the shipped data, GPU and CPU"
$cr train --device cuda --metrics-out "$out/train-cuda.jsonl" | tail -n 3
$cr train --device cpu --metrics-out "$out/train-cpu.jsonl" | tail -n 3
$cr train --device cuda --dtype f16 --metrics-out "$out/train-cuda-f16.jsonl" | tail -n 3

echo "== checkpointing on the GPU"
$cr remat --device cuda --depths 8,16,32,64 --width 1024 --batch-size 256 --policies none,cheap,sqrt --steps 5 --out "$out/remat" | tail -n 16
$cr scale --device cuda --depth 256 --width 256 --memory-limit 1GiB --policies none,sqrt --steps 2 --sweep-from 1024 --out "$out/scale" | tail -n 4

echo "== bench"
rm -f "$out/bench.jsonl"
run_cr() { $cr bench --device cuda --layers "$1" --batch-size "$2" --steps "$3" --warmup "$4" $5 --json | python3 -c '
import json,sys; d=json.load(sys.stdin); d["impl"]="chainrule"; d["mode"]=sys.argv[1]; d["tflops"]=d["gflops"]/1e3; print(json.dumps(d))' "$6" >> "$out/bench.jsonl"; }
run_pt() { python3 $bundle/torch_bench.py "$1" "$2" "$3" "$4" "$5" >> "$out/bench.jsonl"; }
for cfg in "784-1024-1024-1024-10 256 100 10" "8192-8192-8192-8192-10 8192 10 3"; do
  set -- $cfg
  run_cr "$1" "$2" "$3" "$4" "" f32
  run_cr "$1" "$2" "$3" "$4" "--tf32" tf32
  run_cr "$1" "$2" "$3" "$4" "--dtype bf16" bf16
  run_cr "$1" "$2" "$3" "$4" "--dtype f16" f16
  for mode in f32 tf32 bf16 f16; do run_pt "$1" "$2" "$mode" "$3" "$4"; done
done
for mode in tf32 bf16; do run_pt 0 0 "$mode" 0 0; done

echo
echo "== summary ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1))"
echo "parity: $parity"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def lines(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except (OSError, ValueError) as e:
        print(f"({path}: {e})")
        return []
def final(path):
    rows = [r for r in lines(path) if r.get("kind") == "epoch"]
    return rows[-1]["test_accuracy"] * 100 if rows else float("nan")
print(f"train (shipped data): test accuracy cuda {final(out + '/train-cuda.jsonl'):.2f}%  cpu {final(out + '/train-cpu.jsonl'):.2f}%  cuda f16 {final(out + '/train-cuda-f16.jsonl'):.2f}%")
rows = lines(out + "/bench.jsonl")
ceil = {r["mode"]: r["tflops"] for r in rows if r["impl"] == "cublas-ceiling"}
print("cuBLAS 8192^3 ceiling: " + ", ".join(f"{m} {t:.0f} TFLOP/s" for m, t in ceil.items()))
print(f"{'model':<24}{'batch':>6} {'mode':<5}{'chainrule samples/s':>20}{'TFLOP/s':>9}{'peak MiB':>10}{'torch samples/s':>17}{'TFLOP/s':>9}{'peak MiB':>10}{'ratio':>7}")
for layers in sorted({r["layers"] for r in rows if "layers" in r}, key=len):
    for mode in ["f32", "tf32", "bf16", "f16"]:
        c = next((r for r in rows if r.get("layers") == layers and r["mode"] == mode and r["impl"] == "chainrule"), None)
        p = next((r for r in rows if r.get("layers") == layers and r["mode"] == mode and r["impl"] == "pytorch"), None)
        if not (c or p): continue
        b = (c or p)["batch_size"]
        cs = f"{c['samples_per_sec']:20.0f}{c['tflops']:9.1f}{c['peak_bytes']/2**20:10.0f}" if c else f"{'n/a':>20}{'':>9}{'':>10}"
        ps = f"{p['samples_per_sec']:17.0f}{p['tflops']:9.1f}{p['peak_bytes']/2**20:10.0f}" if p else f"{'n/a':>17}{'':>9}{'':>10}"
        ratio = f"{c['samples_per_sec']/p['samples_per_sec']:7.2f}" if c and p else f"{'':>7}"
        print(f"{layers:<24}{b:>6} {mode:<5}{cs}{ps}{ratio}")
PY
