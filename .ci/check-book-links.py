#!/usr/bin/env python3
"""Fails if a relative link in book/src points to a missing file or heading, an {{#include}}
points to a missing file or anchor, an included anchor of Rust code is not a whole snippet
(its brackets do not balance: it would end inside a loop or a call), or a Rust code block is
written inline instead of being included from code that CI compiles (an example, a test or a
source file)."""
import re, sys, pathlib

root = pathlib.Path(__file__).resolve().parent.parent / "book" / "src"
bad = []

def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")

headings = {}
for md in root.rglob("*.md"):
    headings[md.resolve()] = {slug(h) for h in re.findall(r"^#+ (.+)$", md.read_text(), re.M)}

for md in root.rglob("*.md"):
    text = md.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, anchor = target.partition("#")
        dest = (md.parent / path).resolve() if path else md.resolve()
        if not dest.exists():
            bad.append(f"{md.relative_to(root)}: link to missing {target}")
        elif anchor and dest.suffix == ".md" and anchor not in headings.get(dest, set()):
            bad.append(f"{md.relative_to(root)}: link to missing heading {target}")
    for lang, body in re.findall(r"```(\w[^\n]*)\n(.*?)```", text, re.S):
        if lang.startswith("rust") and "{{#include" not in body:
            bad.append(f"{md.relative_to(root)}: inline Rust block (include it from compiled code): {body[:60]!r}")
    for inc in re.findall(r"\{\{#include ([^}]+)\}\}", text):
        path, _, anchor = inc.strip().partition(":")
        dest = (md.parent / path).resolve()
        if not dest.exists():
            bad.append(f"{md.relative_to(root)}: include of missing {path}")
        elif anchor and not re.fullmatch(r"[0-9:]*", anchor) and f"ANCHOR: {anchor}" not in dest.read_text():
            bad.append(f"{md.relative_to(root)}: include of missing anchor {inc}")

def balanced(code):
    """Brackets balance once strings, chars and comments are removed."""
    code = re.sub(r'"(?:\\.|[^"\\])*"', '""', code)
    code = re.sub(r"'(?:\\.|[^'\\])'", "''", code)
    code = re.sub(r"//[^\n]*", "", code)
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for ch in code:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack

for md in root.rglob("*.md"):
    for inc in re.findall(r"\{\{#include ([^}]+)\}\}", md.read_text()):
        path, _, anchor = inc.strip().partition(":")
        dest = (md.parent / path).resolve()
        if not (dest.exists() and dest.suffix == ".rs" and anchor) or re.fullmatch(r"[0-9:]*", anchor):
            continue
        m = re.search(rf"ANCHOR: {re.escape(anchor)}\n(.*?)\n[^\n]*ANCHOR_END: {re.escape(anchor)}",
                      dest.read_text(), re.S)
        if m and not balanced(m.group(1)):
            bad.append(f"{md.relative_to(root)}: the snippet {inc} is not whole (unbalanced brackets)")

if bad:
    print("\n".join(bad))
    sys.exit(1)
print(f"book links ok ({len(headings)} pages)")
