#!/usr/bin/env bash
# Issue 24's training comparison on the shipped data (docs/performance.md): the plain
# default, 16-block residual LayerNorm MLPs of three widths, a 64-block residual net and a
# 64-hidden-layer plain ReLU chain of the same width, each with train's defaults (AdamW, lr
# 0.001 with step:8:0.5, 30 epochs, He init, dropout 0.1 unless given) over seeds 0, 1 and 2,
# and the later 16-block tries (expansion 2, GEGLU, more dropout, 512-wide streams).
# Prints one line per run and each net's mean test accuracy. NETS="a b" runs those nets only.
#   bash scripts/blocks-training.sh [path/to/chainrule]   (~4 h on 2 cores)
set -euo pipefail
bin=${1:-target/release/chainrule}
out=$(mktemp -d)
declare -A nets=(
  [plain-default]=""
  [residual-16x64]="--block residual --depth 16 --width 64"
  [residual-16x128-p0]="--block residual --depth 16 --width 128 --dropout 0"
  [residual-16x256-gelu]="--block residual --depth 16 --width 256 --activation gelu"
  [residual-64x128]="--block residual --depth 64 --width 128"
  [plain-64x128]="--depth 64 --width 128"
  [residual-16x256-gelu-p02]="--block residual --depth 16 --width 256 --activation gelu --dropout 0.2"
  [batchnorm-64x128]="--block residual --norm batch --depth 64 --width 128"
  [residual-16x256-e2]="--block residual --depth 16 --width 256 --expansion 2 --activation gelu"
  [geglu-16x256-e2]="--block gated --depth 16 --width 256 --expansion 2 --activation gelu"
  [residual-16x256-e2-p02]="--block residual --depth 16 --width 256 --expansion 2 --activation gelu --dropout 0.2"
  [residual-16x256-e2-p03]="--block residual --depth 16 --width 256 --expansion 2 --activation gelu --dropout 0.3"
  [residual-16x384-e2-p03]="--block residual --depth 16 --width 384 --expansion 2 --activation gelu --dropout 0.3"
  [residual-16x512-e1-p02]="--block residual --depth 16 --width 512 --expansion 1 --activation gelu --dropout 0.2"
  [residual-16x512-e1-p025]="--block residual --depth 16 --width 512 --expansion 1 --activation gelu --dropout 0.25"
  [residual-16x512-e1-p03]="--block residual --depth 16 --width 512 --expansion 1 --activation gelu --dropout 0.3"
  [residual-16x512-e2-p03]="--block residual --depth 16 --width 512 --expansion 2 --activation gelu --dropout 0.3"
)
nets_to_run=${NETS:-plain-default residual-16x64 residual-16x128-p0 residual-16x256-gelu residual-64x128 plain-64x128 residual-16x256-gelu-p02 batchnorm-64x128 residual-16x256-e2 geglu-16x256-e2 residual-16x256-e2-p02 residual-16x256-e2-p03 residual-16x384-e2-p03 residual-16x512-e1-p02 residual-16x512-e1-p025 residual-16x512-e1-p03 residual-16x512-e2-p03}
for net in $nets_to_run; do
  for seed in 0 1 2; do
    # shellcheck disable=SC2086
    "$bin" train --device cpu --seed "$seed" ${nets[$net]} --metrics-out "$out/$net-$seed.jsonl" >/dev/null
    python3 - "$out/$net-$seed.jsonl" "$net" "$seed" <<'PY'
import json, sys
records = [json.loads(l) for l in open(sys.argv[1])]
last = [r for r in records if r["kind"] == "epoch"][-1]
print(f"{sys.argv[2]:<18} seed {sys.argv[3]}  test accuracy {100 * last['test_accuracy']:.2f}%  train loss {last['loss']:.4f}")
PY
  done
done | tee "$out/runs.txt"
python3 - "$out/runs.txt" <<'PY'
import collections, re, sys
acc = collections.defaultdict(list)
for line in open(sys.argv[1]):
    net, a = line.split()[0], float(re.search(r"accuracy ([\d.]+)%", line).group(1))
    acc[net].append(a)
for net, values in acc.items():
    print(f"{net:<18} mean {sum(values) / len(values):.2f}%  ({', '.join(f'{v:.2f}' for v in values)})")
PY
