"""The workflow diagram: snakemake's ``--rulegraph`` made deterministic (:func:`canonical_rulegraph`) and
drawn with each rule below its inputs (:func:`rulegraph_figure`).
"""
from __future__ import annotations

import re

import matplotlib

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import Problem, UsradError
from .style import DPI, MIN_FONT_PT, MM, RC, save_figure


_NODE = re.compile(r'^\s*(\d+)\s*\[\s*label\s*=\s*"([^"]+)"', re.M)
_EDGE = re.compile(r"^\s*(\d+)\s*->\s*(\d+)", re.M)


def parse_rulegraph(dot: str) -> tuple[dict[int, str], list[tuple[int, int]]]:
    """Nodes ``{id: rule}`` and edges ``[(from, to)]`` of snakemake's ``--rulegraph`` DOT output."""
    nodes = {int(i): name for i, name in _NODE.findall(dot)}
    edges = [(int(a), int(b)) for a, b in _EDGE.findall(dot)]
    if not nodes:
        raise UsradError("Rule graph has no nodes", [Problem("not snakemake --rulegraph output?")])
    return nodes, edges


def canonical_rulegraph(dot: str) -> str:
    """The rule graph as DOT text that depends only on the graph: nodes numbered in rule-name order, edges
    sorted, colours by that order. Snakemake numbers rules in (hash-seeded) set order, so its own text differs
    between two identical runs."""
    nodes, edges = parse_rulegraph(dot)
    order = sorted(nodes, key=lambda n: nodes[n])
    new_id = {old: i for i, old in enumerate(order)}
    lines = ["digraph snakemake_dag {", "    graph[bgcolor=white, margin=0];",
             "    node[shape=box, style=rounded, fontname=sans, fontsize=10, penwidth=2];",
             "    edge[penwidth=2, color=grey];"]
    for old in order:
        hue = new_id[old] / max(1, len(order))
        lines.append(f'\t{new_id[old]}[label = "{nodes[old]}", color = "{hue:.2f} 0.6 0.85", style="rounded"];')
    lines += [f"\t{a} -> {b}" for a, b in sorted({(new_id[a], new_id[b]) for a, b in edges})]
    return "\n".join(lines) + "\n}\n"


def rulegraph_figure(dot: str, stem) -> pd.DataFrame:
    """Draw the rule graph top to bottom: each rule in the layer of its longest path from a source rule."""
    from matplotlib.patches import FancyBboxPatch

    nodes, edges = parse_rulegraph(dot)
    parents = {n: [a for a, b in edges if b == n] for n in nodes}
    layer: dict[int, int] = {}

    def depth(n, seen=()):
        if n not in layer:
            layer[n] = 0 if not parents[n] else 1 + max(depth(p, seen + (n,)) for p in parents[n] if p not in seen)
        return layer[n]
    for n in nodes:
        depth(n)
    n_layers = max(layer.values()) + 1
    by_layer = {k: sorted([n for n in nodes if layer[n] == k], key=lambda n: nodes[n]) for k in range(n_layers)}
    W, row_h, box_h = 183.0, 11.0, 6.0
    H = n_layers * row_h + 4
    pos = {}
    for k in range(n_layers):  # barycentre ordering: each rule under the mean position of its inputs
        ns = by_layer[k]
        if k:
            ns = sorted(ns, key=lambda n: (np.mean([pos[q][0] for q in parents[n]]) if parents[n] else W / 2,
                                           nodes[n]))
        for j, n in enumerate(ns):
            pos[n] = (W * (j + 1) / (len(ns) + 1), 4 + k * row_h + box_h / 2)
    fig = Figure(figsize=(W * MM, H * MM), dpi=DPI)
    with matplotlib.rc_context(RC):
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        ax.set(xlim=(0, W), ylim=(H, 0))
        for a, b in edges:
            (x0, y0), (x1, y1) = pos[a], pos[b]
            ax.annotate("", xy=(x1, y1 - box_h / 2), xytext=(x0, y0 + box_h / 2),
                        arrowprops=dict(arrowstyle="-|>", lw=0.6, color="#555555", shrinkA=0, shrinkB=0,
                                        mutation_scale=6))
        for n, (x, y) in pos.items():
            w = max(18.0, 2.0 * len(nodes[n]) + 4)
            ax.add_patch(FancyBboxPatch((x - w / 2, y - box_h / 2), w, box_h,
                                        boxstyle="round,pad=0,rounding_size=1.5", fc="#E8F1F8", ec="#0072B2", lw=0.7,
                                        zorder=4))
            ax.text(x, y, nodes[n], ha="center", va="center", fontsize=MIN_FONT_PT, zorder=5)
    save_figure(fig, stem)
    return pd.DataFrame([{"rule": nodes[n], "layer": layer[n]} for n in sorted(nodes, key=lambda n: (layer[n], nodes[n]))])
