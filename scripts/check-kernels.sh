#!/usr/bin/env bash
# Kernel checks that need no GPU: the committed PTX is what the pinned compiler makes from
# the current sources, ptxas assembles every kernel for sm_80 and sm_90 without spills, and
# the CPU's FP8 rounding equals NVIDIA's conversion (cuda_fp8.h, built for the host).
set -euo pipefail
cd "$(dirname "$0")/.."
nvcc=$(bash scripts/install-nvcc.sh | tail -n 1)
ptxas=$(dirname "$nvcc")/ptxas
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
NVCC="$nvcc" bash scripts/gen-ptx.sh "$tmp"
if ! diff -r kernels/ptx "$tmp" >/dev/null; then
  echo "kernels/ptx is stale: run scripts/gen-ptx.sh and commit the result" >&2
  diff -r kernels/ptx "$tmp" | head -20 >&2
  exit 1
fi
echo "PTX up to date with kernels/*.cu"
status=0
for arch in sm_80 sm_90; do
  for ptx in kernels/ptx/*.ptx; do
    report=$("$ptxas" -arch="$arch" -v -o /dev/null "$ptx" 2>&1)
    # One "Compiling entry function 'X'" line, then "... N bytes spill stores ..." and "Used R registers".
    echo "$report" | awk -v arch="$arch" '
      /Compiling entry function/ { match($0, /'"'"'[^'"'"']+'"'"'/); fn = substr($0, RSTART + 1, RLENGTH - 2) }
      /spill stores/ { split($0, a, " "); for (i = 1; i <= NF; i++) if ($(i) == "bytes" && $(i+1) == "spill" && $(i+2) == "stores") spills = $(i-1) }
      /Used [0-9]+ registers/ { match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15); printf "  %-6s %-26s %3s registers, %s bytes spilled\n", arch, fn, regs, spills + 0 }'
    if echo "$report" | grep -E "[1-9][0-9]* bytes spill (stores|loads)" >/dev/null; then
      echo "$ptx spills registers on $arch" >&2
      status=1
    fi
  done
done
if command -v g++ >/dev/null; then
  g++ -O2 -I"$(dirname "$nvcc")/../include" -o "$tmp/fp8_table" scripts/fp8_conversion_table.cpp
  "$tmp/fp8_table" "$tmp/fp8_table.bin"
  cargo run --quiet --release --example fp8_against_nvidia -- "$tmp/fp8_table.bin" || status=1
else
  echo "skipped (not passed): the FP8 rounding check against cuda_fp8.h needs g++" >&2
fi
exit $status
