#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a cycle.

usage: module-cycles.py <crate src dir>...

Each `.rs` file under a source directory is one module (`a/b.rs` and `a/b/mod.rs` are
`a::b`; `lib.rs` and `main.rs` the crate root). A module depends on another when its code
(comments and `#[cfg(test)]` items left out) names it by a `crate::`, `super::` or `self::`
path, or in a `crate::{...}` group; a path is credited to the deepest module it names. A
parent declaring its children (`mod x;`) is not a dependency, and the crate root is left
out: it declares and re-exports everything. Any strongly connected component of two or
more modules is reported with the edges that close it, and the exit status is 1.

On the tree before issue 8 this reports exactly the five cycles that issue listed.
"""

import os
import re
import sys


def modules(src):
    """Module path (a tuple) -> file, for every `.rs` file under `src`."""
    found = {}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            found[tuple(parts)] = path
    return found


def strip_tests(text):
    """The text without `#[cfg(test)]` modules (balanced braces) and single test items."""
    kept, i = [], 0
    while True:
        j = text.find("#[cfg(test)]", i)
        if j < 0:
            kept.append(text[i:])
            return "".join(kept)
        kept.append(text[i:j])
        k = j + len("#[cfg(test)]")
        m = re.match(r"\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", text[k:])
        if m:
            depth, p = 0, k + m.end() - 1
            while p < len(text):
                if text[p] == "{":
                    depth += 1
                elif text[p] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                p += 1
            i = p + 1
        else:
            # A test-only `use` or item on the next line.
            end = text.find("\n", text.find("\n", k) + 1)
            i = end if end > 0 else len(text)


def resolve(mods, path):
    """The deepest module that `path` names, or None."""
    path = tuple(path)
    while path and path not in mods:
        path = path[:-1]
    return path if path in mods else None


def graph(src):
    mods = modules(src)
    edges = {m: set() for m in mods}
    for module, path in mods.items():
        with open(path, encoding="utf-8") as f:
            text = re.sub(r"//.*", "", strip_tests(f.read()))
        is_dir_module = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs")
        targets = []
        for m in re.finditer(r"\b(crate|super|self)((?:::\w+)+)", text):
            head, rest = m.group(1), m.group(2).split("::")[1:]
            if head == "crate":
                base = []
            elif head == "self":
                base = list(module)
            else:
                base = list(module)[:-1] if not is_dir_module else list(module)[:-1]
            targets.append(base + rest)
        for m in re.finditer(r"\bcrate::\{([^}]*)\}", text):
            for part in m.group(1).split(","):
                part = part.strip().split(" as ")[0]
                if part:
                    targets.append(part.split("::"))
        for target in targets:
            t = resolve(mods, target)
            if t is None or t == () or t == module:
                continue
            # A parent naming its own child is the module tree, not an import.
            if t[: len(module)] == module:
                continue
            edges[module].add(t)
    return edges


def components(edges):
    """Tarjan's strongly connected components of two or more modules."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(100000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main(dirs):
    if not dirs:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    failed = False
    for src in dirs:
        edges = graph(src)
        for component in components(edges):
            failed = True
            members = set(component)
            names = ", ".join("::".join(m) for m in component)
            print(f"{src}: modules in a cycle: {names}")
            for v in component:
                for w in sorted(edges[v] & members):
                    print(f"  {'::'.join(v)} -> {'::'.join(w)}")
        print(f"{src}: {len(edges)} modules checked")
    if failed:
        print("break each cycle: move what both sides need into a module of its own", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
