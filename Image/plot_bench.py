"""Draw Image/benchmarks.png from Image/bench-results.json (the figures the benchmarks printed).

.venv/bin/python Image/plot_bench.py      (needs matplotlib: a drawing tool, not a loglake dependency)
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent


def main() -> None:
    results = json.loads((HERE / "bench-results.json").read_text())
    # one panel under the other: the long bar labels get the full width and no title is cut
    fig, axes = plt.subplots(2, 1, figsize=(9, 6.6), height_ratios=[5, 2.4])
    for ax, (name, title) in zip(
        axes,
        [("producer", "Producing (every event acknowledged)"), ("writer", "Landing in the lake vs. reading")],
        strict=True,
    ):
        bars = results[name]["bars"]
        labels = [b["label"] for b in bars]
        values = [b["events_per_s"] / 1000 for b in bars]
        colors = [b.get("color", "#4c72b0") for b in bars]
        ax.barh(labels, values, color=colors, height=0.6)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:,.0f}k", va="center", fontsize=9)
        ax.set_title(f"{title}: ours / Kafka's tool = {results[name]['ratio']:.2f}", fontsize=11, loc="left")
        ax.set_xlabel("thousand events per second")
        ax.invert_yaxis()
        ax.set_xlim(0, max(values) * 1.18)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(results["machine"], fontsize=8, color="#555555")
    fig.tight_layout()
    fig.savefig(HERE / "benchmarks.png", dpi=110)


if __name__ == "__main__":
    main()
