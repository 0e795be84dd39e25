"""The workflow diagram: snakemake's ``--rulegraph`` made deterministic (:func:`canonical_rulegraph`) and
drawn with each rule below its inputs (:func:`rulegraph_figure`): laid out by Graphviz (``dot -Tplain``, edges
routed around the boxes, :func:`graphviz_layout`) and drawn by matplotlib in the house style, or, without
Graphviz, in a simpler layered layout of its own.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path as DrawnPath

from ..errors import Problem, UsradError
from .style import DOUBLE, DPI, MIN_FONT_PT, MM, RC, SINGLE, save_figure

#: Graphviz settings of the layout: boxes sized for 7 pt text, ranks close together (inches).
DOT_ARGS = ("-Tplain", "-Earrowhead=none", f"-Nfontsize={MIN_FONT_PT}", "-Nfontname=DejaVu Sans",
            "-Nheight=0.22", "-Nmargin=0.06,0.02", "-Granksep=0.22", "-Gnodesep=0.15")


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


@dataclass(frozen=True)
class Layout:
    """Graphviz's layout (inches, y up): graph size, node boxes ``{id: (x, y, w, h)}`` (centre, size) and edges
    ``[(tail, head, cubic Bézier control points)]``."""

    width: float
    height: float
    boxes: dict[int, tuple[float, float, float, float]]
    edges: list[tuple[int, int, list[tuple[float, float]]]]


def graphviz_layout(dot: str) -> Layout | None:
    """The rule graph laid out by Graphviz (``dot -Tplain``), or None when Graphviz is not installed."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    proc = subprocess.run([exe, *DOT_ARGS], input=dot, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UsradError("Graphviz could not lay out the rule graph", [Problem(proc.stderr.strip()[-500:])])
    width = height = 0.0
    boxes, edges = {}, []
    for line in proc.stdout.splitlines():
        f = line.split()
        if f[:1] == ["graph"]:
            width, height = float(f[2]), float(f[3])
        elif f[:1] == ["node"]:
            boxes[int(f[1])] = tuple(float(v) for v in f[2:6])
        elif f[:1] == ["edge"]:
            n = int(f[3])
            edges.append((int(f[1]), int(f[2]), [(float(f[4 + 2 * i]), float(f[5 + 2 * i])) for i in range(n)]))
    return Layout(width, height, boxes, edges)


def _graphviz_figure(nodes: dict[int, str], lay: Layout, stem) -> pd.DataFrame:
    """Draw Graphviz's layout at scale 1 (7 pt text) in a journal-width figure."""
    fig_w = SINGLE if lay.width <= SINGLE - 0.1 else DOUBLE
    pad = 0.08
    fig = Figure(figsize=(fig_w, lay.height + 2 * pad), dpi=DPI)
    with matplotlib.rc_context(RC):
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        side = (fig_w - lay.width) / 2
        ax.set(xlim=(-side, lay.width + side), ylim=(-pad, lay.height + pad))
        for _, _, pts in lay.edges:
            path = DrawnPath(pts, [DrawnPath.MOVETO] + [DrawnPath.CURVE4] * (len(pts) - 1))
            ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=6, lw=0.6, color="#555555",
                                         zorder=2))
        for n, (x, y, w, h) in lay.boxes.items():
            ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.05",
                                        fc="#E8F1F8", ec="#0072B2", lw=0.7, zorder=4))
            ax.text(x, y, nodes[n], ha="center", va="center", fontsize=MIN_FONT_PT, zorder=5)
    save_figure(fig, stem)
    ranks = {y: k for k, y in enumerate(sorted({b[1] for b in lay.boxes.values()}, reverse=True))}
    layer = {n: ranks[lay.boxes[n][1]] for n in nodes}
    return pd.DataFrame([{"rule": nodes[n], "layer": layer[n], "layout": "graphviz"}
                         for n in sorted(nodes, key=lambda n: (layer[n], nodes[n]))])


def rulegraph_figure(dot: str, stem) -> pd.DataFrame:
    """Draw the rule graph top to bottom, each rule below its inputs: Graphviz's layout when ``dot`` is installed
    and the graph fits a 183 mm figure at 7 pt, else each rule in the layer of its longest path from a source
    rule. Returns ``rule, layer, layout`` (layer 0 at the top)."""
    nodes, edges = parse_rulegraph(dot)
    lay = graphviz_layout(dot)
    if lay is not None and lay.width <= DOUBLE - 0.1:
        return _graphviz_figure(nodes, lay, stem)
    return _layered_figure(nodes, edges, stem)


def _layered_figure(nodes: dict[int, str], edges: list[tuple[int, int]], stem) -> pd.DataFrame:
    """The layout without Graphviz: each rule in the layer of its longest path from a source rule."""
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
    return pd.DataFrame([{"rule": nodes[n], "layer": layer[n], "layout": "layered"}
                         for n in sorted(nodes, key=lambda n: (layer[n], nodes[n]))])
