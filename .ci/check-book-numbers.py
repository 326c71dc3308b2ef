#!/usr/bin/env python3
"""Every measured number in the guide's result tables comes from a committed results file.

For each page below, every number in a table row (except the row's first cell, which names the
thing measured, and cells stating a target or a formula: starting with ≤, ≥, < or >) must occur
in one of the page's results files: the outputs of the commands the page names, committed under
book/src/. Numbers are compared as written, thousands separators removed. Tables a page includes
from a results file ({{#include}}) are checked trivially and need no rule here.

Exit status 1 with the offending rows if any number has no source.
"""

import re
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parent.parent / "book" / "src"

# page -> (the results files its numbers must come from, the sections checked: all if None)
PAGES = {
    "performance.md": (["bench/results.md", "bench/suite-output.txt", "bench/criterion.md",
                        "bench/before-issue-13.md", "bench/cold-build.md",
                        "bench/synthetic.md", "bench/align-million.txt", "bench/he-holders.txt", "bench/he-synthetic-3.txt", "bench/adam.txt", "bench/census-adam.txt", "bench/clip.txt", "bench/ou-kernels.txt",
                        "privynet/run-output.txt",
                        "privynet/quick-output.txt", "privynet/quickstart-output.txt"], None),
    "label-holder.md": (["bench/labels/results.md"], "Measured trade-off"),
    "security.md": (["bench/features/results.md"], "Features over a run: the Gram attack"),
    "privynet.md": (["privynet/results.md", "privynet/run-output.txt",
                     "privynet/quick-output.txt", "privynet/optimiser-runs.txt"], "Results"),
}

# A number: digits with an optional fraction, or thousands in groups of three separated by a
# comma or a (thin) space.
NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:[,  ]\d{3})+|\d+)(?:\.\d+)?")


def numbers(text):
    return {n.replace(",", "").replace(" ", "").replace(" ", "").rstrip()
            for n in NUMBER.findall(text)}


def section_text(text, title):
    """The lines under the heading `title`, up to the next heading of the same or a higher
    level."""
    out, level = [], None
    for line in text.splitlines():
        m = re.match(r"^(#+) (.*)", line)
        if m and level is not None and len(m.group(1)) <= level:
            break
        if level is not None:
            out.append(line)
        if m and m.group(2).strip() == title:
            level = len(m.group(1))
    return "\n".join(out)


def table_rows(text):
    """Data rows of the markdown tables outside code blocks: not headers (followed by a
    separator line) and not separators."""
    lines = text.splitlines()
    in_code = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("|") or set(line) <= set("|-: "):
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if following.startswith("|") and set(following) <= set("|-: "):
            continue
        yield i + 1, line, [c.strip() for c in line.strip().strip("|").split("|")]


def main():
    failures = []
    for page, (sources, section) in PAGES.items():
        known = set()
        for s in sources:
            path = BOOK / s
            if not path.exists():
                failures.append(f"{page}: results file {s} is not committed")
                continue
            known |= numbers(path.read_text())
        text = (BOOK / page).read_text()
        if section:
            text = section_text(text, section)
        for line_no, line, cells in table_rows(text):
            missing = set()
            for cell in cells[1:]:
                if cell[:1] in "≤≥<>" or cell.startswith("`"):
                    continue
                missing |= numbers(cell) - known
            if missing:
                failures.append(f"{page}:{line_no}: {sorted(missing)} not in {sources}\n    {line}")
    if failures:
        print("numbers without a committed source:\n" + "\n".join(failures))
        sys.exit(1)
    print("every number in the result tables has a committed source")


if __name__ == "__main__":
    main()
