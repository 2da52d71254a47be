"""Draw Image/benchmarks.png from Image/bench-results.json (the figures the benchmarks printed).

python Image/plot_bench.py      (needs matplotlib: a drawing tool, not a loglake dependency)
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent


def main() -> None:
    results = json.loads((HERE / "bench-results.json").read_text())
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (name, title) in zip(
        axes,
        [("producer", "Producing (every event acknowledged)"), ("writer", "Landing in the lake vs. reading")],
        strict=True,
    ):
        bars = results[name]["bars"]
        labels = [b["label"] for b in bars]
        values = [b["events_per_s"] / 1000 for b in bars]
        colors = [b.get("color", "#4c72b0") for b in bars]
        ax.barh(labels, values, color=colors)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:,.0f}k", va="center", fontsize=9)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("thousand events per second")
        ax.invert_yaxis()
        ax.set_xlim(0, max(values) * 1.25)
        ax.text(
            0.99,
            0.02,
            f"ratio ours/Kafka's tool: {results[name]['ratio']:.2f}",
            transform=ax.transAxes,
            ha="right",
            fontsize=9,
            color="#333333",
        )
    fig.suptitle(results["machine"], fontsize=8, color="#555555")
    fig.tight_layout()
    fig.savefig(HERE / "benchmarks.png", dpi=110)


if __name__ == "__main__":
    main()
