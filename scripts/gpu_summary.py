"""The table `scripts/gpu-check.sh run` ends with: training accuracy on the shipped data,
chainrule's bench rows against every baseline measured in the same run, and the bf16
products by result type. Also written as Markdown to OUT/summary.md."""
import json, sys

out = sys.argv[1]
lines_out = []


def say(s=""):
    print(s)
    lines_out.append(s)


def rows(path):
    try:
        return [json.loads(l) for l in open(path) if l.strip()]
    except (OSError, ValueError) as e:
        return []


def final_accuracy(path):
    epochs = [r for r in rows(path) if r.get("kind") == "epoch"]
    return f"{epochs[-1]['test_accuracy'] * 100:.2f}%" if epochs else "not run"


say("train on the shipped data (test accuracy after the last epoch): " + ", ".join(
    f"{name} {final_accuracy(f'{out}/train-{name}.jsonl')}" for name in ["cuda-f32", "cuda-bf16", "cuda-bf16-graph", "cuda-f16", "cuda-fp8", "cpu-f32"]))

ours = rows(out + "/bench.jsonl")
base = rows(out + "/baselines.jsonl")
ceiling = {r["mode"]: r["tflops"] for r in base if r["impl"] == "cublas-ceiling"}
say("cuBLAS 8192^3 ceiling: " + (", ".join(f"{m} {t:.0f} TFLOP/s" for m, t in ceiling.items()) or "not run"))
say()
impls = ["pytorch", "torch-compile", "torch-compile-ro", "jax-jit"]
say("| model | batch | mode | chainrule samples/s | TFLOP/s | of ceiling | step/products | "
    + " | ".join(f"vs {i}" for i in impls) + " |")
say("| --- | ---: | --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in impls) + " |")
for layers in sorted({r["layers"] for r in ours + base if "layers" in r}, key=len):
    for mode in ["f32", "f32+graph", "tf32", "bf16", "bf16+graph", "f16", "fp8"]:
        c = next((r for r in ours if r.get("layers") == layers and r["mode"] == mode), None)
        # A graph-replayed row is compared with the baselines of its dtype; fp8 with bf16's
        # (the target: FP8 against PyTorch's bf16 autocast).
        base_mode = {"fp8": "bf16"}.get(mode, mode.split("+")[0])
        others = {i: next((r for r in base if r.get("layers") == layers and r["mode"] == base_mode and r["impl"] == i), None)
                  for i in impls}
        if not c and (not any(others.values()) or mode != base_mode):
            continue
        batch = (c or next(o for o in others.values() if o))["batch_size"]
        cells = [layers, str(batch), mode]
        if c:
            of_ceiling = f"{c['tflops'] / ceiling[base_mode]:.0%}" if base_mode in ceiling else ""
            cells += [f"{c['samples_per_sec']:,.0f}", f"{c['tflops']:.1f}", of_ceiling,
                      f"{c['gflops_over_matmul_gflops']:.3f}"]
        else:
            cells += ["n/a", "", "", ""]
        for i in impls:
            o = others[i]
            if o and c:
                cells.append(f"{c['samples_per_sec'] / o['samples_per_sec']:.2f} ({o['samples_per_sec']:,.0f})")
            elif o:
                cells.append(f"({o['samples_per_sec']:,.0f})")
            else:
                cells.append("")
        say("| " + " | ".join(cells) + " |")
say("(vs X: chainrule's samples/s over X's; X's own samples/s in brackets; fp8 rows against X's bf16)")
for r in (r for r in base if r["mode"] == "float8"):
    c = next((o for o in ours if o.get("layers") == r["layers"] and o["mode"] == "fp8"), None)
    ratio = f"{c['samples_per_sec'] / r['samples_per_sec']:.2f}x" if c else "n/a"
    say(f"fp8 {r['layers']}: chainrule {ratio} torchao float8 ({r['impl']}, {r['samples_per_sec']:,.0f} samples/s)")
products = [r for r in base if r["impl"] == "cublas-product"]
if products:
    say()
    say("bf16 products of a square 8192 layer (cuBLAS through PyTorch), by result type:")
    for r in products:
        what = f"{r['ms']:.3f} ms  {r['tflops']:.0f} TFLOP/s" if "ms" in r else r["error"]
        say(f"  {r['product']:<9} -> {r['result']:<4} {what}")
with open(out + "/summary.md", "w") as f:
    f.write("\n".join(lines_out) + "\n")
