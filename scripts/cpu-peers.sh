#!/usr/bin/env bash
# Issue 27's CPU comparison (docs/performance.md): three interleaved rounds of the
# 784-1024-1024-1024-10 step at batch 256 (plain SGD, the peers' step) for this build, an
# earlier build, JAX-jit and PyTorch, then the bare products at 2048^3 against
# numpy/OpenBLAS sgemm, then the README's first command for both builds. Run on a quiet
# machine; one JSON line each. PREV, if given, is a third build whose step rounds run
# beside the others (the build just before a change, where OLD is the one before the issue).
#   NEW=target/release/chainrule OLD=path/to/earlier/chainrule PY=.venv-peers/bin/python \
#     P=../shared/peers bash scripts/cpu-peers.sh
set -u
NEW=${NEW:-target/release/chainrule}
OLD=${OLD:?an earlier build to compare with}
PREV=${PREV:-}
PY=${PY:?a Python with torch and jax (../shared/peers/setup_venv.sh)}
P=${P:-../shared/peers}
FLAGS="--layers 784-1024-1024-1024-10 --batch-size 256 --steps 100 --optimizer sgd --momentum 0 --weight-decay 0 --dropout 0 --lr 0.001 --device cpu --json"
for i in 1 2 3; do
  echo "round $i"
  echo "new $($NEW bench $FLAGS | tail -1)"
  echo "old $($OLD bench $FLAGS | tail -1)"
  [ -n "$PREV" ] && echo "prev $($PREV bench $FLAGS | tail -1)"
  echo "jax $($PY $P/mlp_train.py --framework jax --layers 784,1024,1024,1024,10 --batch 256 --steps 100 --warmup 10 --remat none 2>/dev/null | tail -1)"
  echo "torch $($PY $P/mlp_train.py --framework torch --layers 784,1024,1024,1024,10 --batch 256 --steps 100 --warmup 10 --remat none 2>/dev/null | tail -1)"
done
for i in 1 2 3; do
  echo "g2048 new $($NEW bench --layers 2048-2048-2048 --batch-size 2048 --steps 10 --warmup 2 --optimizer sgd --momentum 0 --weight-decay 0 --dropout 0 --device cpu --json | tail -1)"
  echo "g2048 old $($OLD bench --layers 2048-2048-2048 --batch-size 2048 --steps 10 --warmup 2 --optimizer sgd --momentum 0 --weight-decay 0 --dropout 0 --device cpu --json | tail -1)"
  echo "sgemm $(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $PY $P/sgemm_ceiling.py --sizes 2048 --repeats 15 2>/dev/null | tail -1)"
done
# The README's first command, NEW and OLD interleaved: the median epoch's samples/s and the
# test accuracy, three rounds at the default seed (0), then seeds 1 and 2 once each.
for run in "1 0" "2 0" "3 0" "seed 1" "seed 2"; do
  set -- $run
  seed=$2
  for build in new old; do
    bin=$NEW; [ $build = old ] && bin=$OLD
    m=$(mktemp)
    "$bin" train --seed "$seed" --metrics-out "$m" >/dev/null 2>&1
    echo "readme $build $run $(python3 -c '
import json, statistics, sys
e = [r for r in map(json.loads, open(sys.argv[1])) if r["kind"] == "epoch"]
print(json.dumps({"samples_per_sec_median_epoch": statistics.median(r["samples_per_sec"] for r in e), "test_accuracy": e[-1]["test_accuracy"]}))' "$m")"
    rm -f "$m"
  done
done
