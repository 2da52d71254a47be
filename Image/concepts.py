"""Draw Image/partition-log.png and Image/consumer-groups.png, the README's concept pictures.

.venv/bin/python Image/concepts.py      (needs matplotlib: a drawing tool, not a loglake dependency)
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

HERE = Path(__file__).resolve().parent
BLUE, GREEN, GREY, ORANGE, RED = "#4c72b0", "#55a868", "#bbbbbb", "#dd8452", "#c44e52"
PARTITION_COLORS = ("#dbe8f7", "#def2de", "#fde8d4")


def arrow(ax, start, end, color="#333333", style="-|>", width=1.4):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=14, color=color, lw=width))


def partition_log() -> None:
    """One partition: offsets, the log start (retention), the committed offset, the log end, the lag."""
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.set_xlim(-1.2, 14.6)
    ax.set_ylim(-2.3, 2.6)
    ax.axis("off")
    deleted, committed, end = 2, 8, 12  # offsets 0-1 expired, 2-7 read and committed, 8-11 not yet
    for offset in range(end + 1):
        if offset < deleted:
            face, edge, text = "white", GREY, "#999999"
        elif offset < committed:
            face, edge, text = "#cfe3cf", "#333333", "#222222"
        elif offset < end:
            face, edge, text = "#f8d9c4", "#333333", "#222222"
        else:
            face, edge, text = "white", "#333333", "#666666"
        ax.add_patch(
            Rectangle(
                (offset, 0), 1, 1, facecolor=face, edgecolor=edge, lw=1.2, ls="--" if offset == end else "-"
            )
        )
        ax.text(
            offset + 0.5,
            0.5,
            "next" if offset == end else str(offset),
            ha="center",
            va="center",
            color=text,
            fontsize=11,
        )
    ax.text(-0.2, 0.5, "partition 0", ha="right", va="center", fontsize=11, fontweight="bold")
    ax.text(1, 1.25, "deleted by\nretention", ha="center", fontsize=9, color="#777777")
    ax.text(5, 1.25, "read, in the lake, committed", ha="center", fontsize=9.5, color="#2d6a2d")
    ax.text(10, 1.25, "not yet read by the group", ha="center", fontsize=9.5, color="#a0522d")
    # the producer appends at the end
    arrow(ax, (14.4, 1.9), (12.6, 1.05), color=BLUE)
    ax.text(14.4, 2.05, "producer appends\nhere", ha="center", va="bottom", fontsize=9.5, color=BLUE)
    # markers below the log
    for x, label, color in (
        (deleted, "log start offset = 2", "#777777"),
        (
            committed,
            "committed offset = 8\n(in __consumer_offsets: the next\nrecord the group will read)",
            ORANGE,
        ),
        (end, "log end offset = 12\n(the next offset\nto be written)", BLUE),
    ):
        arrow(ax, (x, -0.95), (x, -0.05), color=color)
        ax.text(x, -1.05, label, ha="center", va="top", fontsize=9.5, color=color)
    ax.annotate(
        "",
        xy=(committed, 2.15),
        xytext=(end, 2.15),
        arrowprops={"arrowstyle": "<->", "color": RED, "lw": 1.4},
    )
    ax.text((committed + end) / 2, 2.3, "lag = 12 - 8 = 4 records", ha="center", fontsize=10.5, color=RED)
    fig.suptitle("A partition is an append-only log: records are numbered by offset", fontsize=12)
    fig.tight_layout()
    fig.savefig(HERE / "partition-log.png", dpi=100)
    plt.close(fig)


def box(ax, x, y, w, h, text, face, fontsize=10):
    ax.add_patch(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", facecolor=face, edgecolor="#444444"
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def group_panel(ax, x0, title, members, subtitle):
    """A topic's three partitions on the left, the members of one group on the right."""
    ax.text(x0 + 2.3, 5.55, title, ha="center", fontsize=11, fontweight="bold")
    ax.text(x0 + 2.3, 5.15, subtitle, ha="center", fontsize=9, color="#555555")
    ys = (3.9, 2.5, 1.1)
    for p, y in enumerate(ys):
        box(ax, x0, y, 1.6, 0.8, f"partition {p}", PARTITION_COLORS[p])
    member_ys = {1: (2.5,), 2: (3.4, 1.6)}[len(members)]
    for (name, parts), my in zip(members, member_ys, strict=True):
        box(ax, x0 + 3.0, my, 1.6, 0.8, name, "#e6f7e6")
        for p in parts:
            arrow(ax, (x0 + 1.6, ys[p] + 0.4), (x0 + 3.0, my + 0.4), color="#555555")


def consumer_groups() -> None:
    """Group log-data-lake before and after a second writer joins; group audit reads everything."""
    fig, ax = plt.subplots(figsize=(12, 4.4))
    ax.set_xlim(-0.3, 17.3)
    ax.set_ylim(0.4, 6.2)
    ax.axis("off")
    group_panel(
        ax,
        0,
        "group log-data-lake, before",
        [("writer A\np0 p1 p2", (0, 1, 2))],
        "it reads all three partitions",
    )
    arrow(ax, (5.0, 2.9), (5.9, 2.9), color=RED, width=2)
    ax.text(5.45, 3.15, "writer B\njoins:\nrebalance", ha="center", va="bottom", fontsize=9, color=RED)
    group_panel(
        ax,
        6.2,
        "group log-data-lake, after the rebalance",
        [("writer A\np0 p1", (0, 1)), ("writer B\np2", (2,))],
        "each partition to exactly one member",
    )
    ax.plot([11.55, 11.55], [0.6, 5.9], color="#999999", lw=1, ls=":")
    group_panel(
        ax, 12.2, "group audit (a second group)", [("audit\np0 p1 p2", (0, 1, 2))], "it gets every event too"
    )
    fig.suptitle(
        "Within a group, partitions are split between members; every group reads the whole topic",
        fontsize=12,
    )
    fig.tight_layout()
    fig.savefig(HERE / "consumer-groups.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    partition_log()
    consumer_groups()
