"""Print the paper's ablation tables (4, 5, 6) from ``scripts/tiny_ablations.sh``'s evaluation folders.

    python scripts/paper_tables.py runs/ablations            # after bash scripts/tiny_ablations.sh

Reads ``<root>/<variant>/<group>/summary.csv`` (rar/eval/paper_tables.py lists the rows) and prints
markdown: PSNR / SSIM per group, seconds per image and mean rounds; missing variants say "not run".
"""

from __future__ import annotations

import sys
from pathlib import Path

from rar.eval.paper_tables import paper_tables


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python scripts/paper_tables.py <folder written by scripts/tiny_ablations.sh>", file=sys.stderr)
        return 2
    print(paper_tables(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
