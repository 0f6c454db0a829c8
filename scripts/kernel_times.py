"""Sums ncu's per-kernel durations (a --csv --metrics gpu__time_duration.sum report) by kernel
name and prints them per step, longest first: where a GPU step's time goes, kernel by kernel.
Usage: kernel_times.py REPORT.csv STEPS"""
import csv
import sys
from collections import defaultdict


def main():
    path, steps = sys.argv[1], int(sys.argv[2])
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]
    total, count = defaultdict(float), defaultdict(int)
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = row["Kernel Name"][:70]
        total[name] += float(row["Metric Value"].replace(",", "")) / 1e6
        count[name] += 1
    ms_all = sum(total.values())
    print(f"{path}: {ms_all / steps:.3f} ms of kernels per step ({steps} steps)")
    print(f"{'ms/step':>8} {'launches/step':>13}  kernel")
    for name, ms in sorted(total.items(), key=lambda kv: -kv[1])[:30]:
        print(f"{ms / steps:8.3f} {count[name] / steps:13.1f}  {name}")


if __name__ == "__main__":
    main()
