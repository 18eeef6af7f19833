"""Draw img/projection_head.png: where P3, P2 and P1 are read in a SimCLR model."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

BOXES = [
    ("image (two augmented views)", "#dddddd"),
    ("backbone + global average pool", "#9ecae1"),
    ("Dense(d0) [-> BN] -> ReLU", "#fdd0a2"),
    ("Dense(d1) [-> BN] -> ReLU   (3-layer heads)", "#fdd0a2"),
    ("Dense(out) [-> BN]", "#fdae6b"),
    ("NT-Xent loss", "#dddddd"),
]
TAPS = {1: "P3  (h, the representation)", 2: "P2", 3: "P1  (= P2 for 2-layer heads)"}


def main(path="img/projection_head.png"):
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.5, len(BOXES) + 0.2)
    ax.axis("off")
    for i, (text, colour) in enumerate(BOXES):
        y = len(BOXES) - 1 - i
        ax.add_patch(FancyBboxPatch((0.3, y), 5.6, 0.6, boxstyle="round,pad=0.05", fc=colour))
        ax.text(3.1, y + 0.3, text, ha="center", va="center", fontsize=9)
        if i:
            ax.annotate("", (3.1, y + 0.65), (3.1, y + 0.95), arrowprops=dict(arrowstyle="->"))
        if i in TAPS:
            ax.annotate(
                TAPS[i],
                (6.0, y + 0.3),
                (6.6, y + 0.3),
                va="center",
                fontsize=9,
                arrowprops=dict(arrowstyle="<-", color="#d62728"),
                color="#d62728",
            )
    ax.text(0.3, -0.4, "projection head: simclr.projection_head (orange)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
