"""Draw Image/benchmarks.png from Image/bench-results.json, the figures the benchmarks wrote:

    scripts/bench producer --runs 3 --json Image/bench-results.json
    scripts/bench writer --runs 3 --peers --json Image/bench-results.json
    .venv/bin/python Image/plot_bench.py      (needs matplotlib: a drawing tool, not a loglake dependency)

Each bar is the median of the runs, its whisker the spread (min-max); the titles give the median
ratio to Kafka's own tool, the footer the machine and the load average before each run.
"""

import json
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
OURS, KAFKA, PEER, OTHER = "#4c72b0", "#dd8452", "#8172b3", "#999999"

# (key of the events/s figure, label, colour); "<who>_eps" goes with "<who>_cpu_s_per_million" and
# "<who>_peak_rss_mib" where the benchmark measured them
PRODUCER = [
    ("gen_eps", "generation alone (no Kafka)", OTHER),
    ("ours_eps", "faking_data.py (confluent-kafka)", OURS),
    ("kafka_eps", "kafka-producer-perf-test, our events", KAFKA),
    ("kafka_record_size_eps", "kafka-producer-perf-test, --record-size", KAFKA),
    ("kafka_python_eps", "faking_data.py (kafka-python)", OTHER),
]
WRITER = [
    ("ours_eps", "receive_faking_data.py (in lake + committed)", OURS),
    ("kafka_eps", "kafka-consumer-perf-test (read only)", KAFKA),
    ("quix_eps", "Quix Streams S3FileSink, plain JSON Lines (in lake + committed)", PEER),
    ("quix_gzip_eps", "Quix Streams S3FileSink, gzip (in lake + committed)", PEER),
]


def label(median: dict, key: str, text: str) -> str:
    who = key.removesuffix("_eps")
    extra = []
    if f"{who}_cpu_s_per_million" in median:
        extra.append(f"{median[f'{who}_cpu_s_per_million']:.0f} CPU-s per million events")
    if f"{who}_peak_rss_mib" in median:
        extra.append(f"peak RSS {median[f'{who}_peak_rss_mib']:.0f} MiB")
    return text + ("\n" + ", ".join(extra) if extra else "")


def panel(ax, section: dict, bars: list, title: str) -> None:
    shown = [b for b in bars if b[0] in section["median"]]
    labels = [label(section["median"], key, text) for key, text, _colour in shown]
    medians = [section["median"][b[0]] / 1000 for b in shown]
    low = [m - section["min"][b[0]] / 1000 for m, b in zip(medians, shown, strict=True)]
    high = [section["max"][b[0]] / 1000 - m for m, b in zip(medians, shown, strict=True)]
    ax.barh(labels, medians, xerr=[low, high], color=[b[2] for b in shown], height=0.6, capsize=3)
    for y, (m, h) in enumerate(zip(medians, high, strict=True)):
        ax.text(m + h, y, f"  {m:,.0f}k", va="center", fontsize=9)
    runs = len(section["runs"])
    ax.set_title(
        f"{title}: ours / Kafka's tool = {section['median']['ratio']:.2f} (median of {runs})",
        fontsize=11,
        loc="left",
    )
    ax.set_xlabel("thousand events per second (bar: median; whisker: min-max)")
    ax.invert_yaxis()
    ax.set_xlim(0, max(m + h for m, h in zip(medians, high, strict=True)) * 1.2)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(axis="y", labelsize=8.5)


def footer(results: dict) -> str:
    machine = results["writer"]["machine"].removeprefix("machine: ")
    loads = "; ".join(
        f"{name}: " + ", ".join(f"{run['load_before']:.2f}" for run in results[name]["runs"])
        for name in ("producer", "writer")
    )
    events = results["writer"]["events"]
    return "\n".join(
        [
            *textwrap.wrap(machine, 150),
            f"{events:,} events per run; 1-min load average before each run: {loads}",
        ]
    )


def main() -> None:
    results = json.loads((HERE / "bench-results.json").read_text())
    fig, axes = plt.subplots(2, 1, figsize=(10, 7.4), height_ratios=[5, 3.2])
    panel(axes[0], results["producer"], PRODUCER, "Producing, every event acked")
    panel(axes[1], results["writer"], WRITER, "Landing in the lake vs. reading")
    fig.text(0.01, 0.005, footer(results), fontsize=7, color="#555555", va="bottom")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(HERE / "benchmarks.png", dpi=110)


if __name__ == "__main__":
    main()
