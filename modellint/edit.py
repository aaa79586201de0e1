"""Editing a graph: the rewrites fixes are made of.

A :class:`GraphEditor` edits a graph in place (take :meth:`Graph.copy` first): set a
node's attrs, insert a node after a tensor, remove a single-input node, replace the
uses of a ref. After each edit the nodes downstream are sized and counted again with
the adapters' own steps (:mod:`modellint.infer`), the graph's caches are dropped
(:meth:`Graph.touch`) and the invariants hold (:meth:`Graph.lint`): a fused
activation stays its own node right after its layer, a shared layer's parameters
stay on its first call.

The editor also carries the model's weights, when they were read (``{node:
{weight name: numpy array}}`` in the framework's own names), as edited copies:
a fix that keeps a rewrite exact refolds them (:meth:`refold`); a node whose
parameters change shape loses them (it is freshly initialised) and
:attr:`GraphEditor.weight_status` says so, per layer.
"""

from __future__ import annotations

from typing import Optional

from .graph import Graph, Node, split_ref
from .infer import FUSABLE, count_node, infer_node

#: What happened to a layer's weights.
KEPT, REFOLDED, FRESH, REMOVED = "kept", "refolded", "initialised", "removed"


class EditError(ValueError):
    """An edit the graph cannot take (a missing node, a node with several inputs to remove)."""


class GraphEditor:
    def __init__(self, graph: Graph, weights: Optional[dict] = None):
        self.graph = graph
        self.weights = {k: dict(v) for k, v in weights.items()} if weights is not None else None
        #: node name -> KEPT/REFOLDED/FRESH/REMOVED for every node whose weights an edit touched
        self.weight_status: dict = {}
        self.added: list = []  # names of inserted nodes, in order

    # -- names ----------------------------------------------------------------
    def fresh_name(self, base: str) -> str:
        if base not in self.graph.nodes:
            return base
        i = 2
        while f"{base}_{i}" in self.graph.nodes:
            i += 1
        return f"{base}_{i}"

    def node(self, name: str) -> Node:
        try:
            return self.graph.nodes[split_ref(name)[0]]
        except KeyError:
            raise EditError(f"no node {name!r}") from None

    def out_ref(self, name: str) -> str:
        """The ref that carries a layer's output: its fused activation's, when it has one."""
        for n in self.graph.consumers(self.node(name)):
            if n.fused_into == name:
                return n.name
        return name

    # -- edits ----------------------------------------------------------------
    def set_attrs(self, name: str, **attrs) -> Node:
        """Update a node's attrs; an ``activation`` argument of a conv/dense layer adds,
        changes or removes its fused activation node."""
        node = self.node(name)
        old_act = node.attrs.get("activation")
        node.attrs.update(attrs)
        if node.op in FUSABLE and "activation" in attrs and attrs["activation"] != old_act:
            self._refuse_activation(node)
        self._reinfer([node.name])
        return node

    def _refuse_activation(self, node: Node) -> None:
        fused = [n for n in self.graph.consumers(node) if n.fused_into == node.name]
        act = node.attrs.get("activation") or "linear"
        if fused and act in ("linear", None):
            self._unlink(fused[0].name)
        elif fused:
            fused[0].attrs["function"] = act
        elif act != "linear":
            new = Node(name=self.fresh_name(node.name + ".activation"), op="activation",
                       source_type=node.source_type, attrs={"function": act}, inputs=[node.name],
                       output_shapes=list(node.output_shapes), fused_into=node.name, scope=node.scope)
            readers = self.graph.consumers(node)
            self._insert(new, node.name)
            for r in readers:
                r.inputs = [new.name if x == node.name else x for x in r.inputs]
            self.graph.outputs = [new.name if x == node.name else x for x in self.graph.outputs]
            self.graph.touch()

    def insert_after(self, ref: str, node: Node) -> str:
        """Insert ``node`` reading ``ref`` (a layer name means its output, after its fused
        activation); every other reader of ``ref`` (and a graph output) reads ``node`` instead.
        Returns the new node's name."""
        ref = self.out_ref(ref) if ":" not in ref else ref
        self.node(ref)
        node.name = self.fresh_name(node.name)
        node.inputs = [ref]
        readers = [n for n in self.graph.consumers(self.node(ref))]
        self._insert(node, split_ref(ref)[0])
        for r in readers:
            r.inputs = [node.name if x == ref else x for x in r.inputs]
        self.graph.outputs = [node.name if x == ref else x for x in self.graph.outputs]
        self.graph.touch()
        self._added(node)
        return node.name

    def insert_before(self, name: str, node: Node) -> str:
        """Insert ``node`` between ``name`` and its (first) input."""
        target = self.node(name)
        if not target.inputs:
            raise EditError(f"{name} has no input to insert before")
        src = target.inputs[0]
        node.name = self.fresh_name(node.name)
        node.inputs = [src]
        anchor = self._before(target.name)
        self._insert(node, anchor)
        target.inputs = [node.name] + target.inputs[1:]
        self.graph.touch()
        self._added(node)
        return node.name

    def remove(self, name: str) -> None:
        """Remove a single-input node (and its fused activation): its readers read its input."""
        node = self.node(name)
        for fused in [n for n in self.graph.consumers(node) if n.fused_into == node.name]:
            self._unlink(fused.name)
        if len(node.inputs) != 1:
            raise EditError(f"{name} has {len(node.inputs)} inputs; only a single-input node can be removed")
        readers = [n.name for n in self.graph.consumers(node)]
        self._unlink(name)
        if self.weights is not None:
            self.weights.pop(name, None)
        if node.params:
            self.weight_status[name] = REMOVED
        self._reinfer(readers)

    def replace_uses(self, old_ref: str, new_ref: str, *, keep=()) -> None:
        """Every reader of ``old_ref`` (except the nodes in ``keep``), and a graph output,
        reads ``new_ref`` instead."""
        self.node(old_ref), self.node(new_ref)
        touched = []
        for n in list(self.graph.consumers(self.node(old_ref))):
            if n.name in keep or n.name == split_ref(new_ref)[0]:
                continue
            n.inputs = [new_ref if x == old_ref else x for x in n.inputs]
            touched.append(n.name)
        self.graph.outputs = [new_ref if x == old_ref else x for x in self.graph.outputs]
        self.graph.touch()
        self._check_order()
        self._reinfer(touched)

    def replace(self, name: str, node: Node) -> str:
        """Put ``node`` where ``name`` was (same inputs, same readers); the old node goes."""
        old = self.node(name)
        node.inputs = list(old.inputs)
        node.name = name if node.name in ("", name) else self.fresh_name(node.name)
        items = [(k, node if k == name else v) for k, v in self.graph.nodes.items()]
        self.graph.nodes = {node.name if k == name else k: v for k, v in items}
        if node.name != name:
            for n in self.graph.nodes.values():
                n.inputs = [node.name if split_ref(x)[0] == name else x for x in n.inputs]
            self.graph.outputs = [node.name if split_ref(x)[0] == name else x for x in self.graph.outputs]
        self.graph.touch()
        if self.weights is not None:
            self.weights.pop(name, None)
        if old.params:
            self.weight_status[name] = REMOVED
        self._added(node)
        return node.name

    def refold(self, name: str, arrays: dict) -> None:
        """A fix that keeps the layer's function exactly sets its new arrays (when weights were read)."""
        if self.weights is not None and name in self.weights:
            self.weights[name] = dict(arrays)
            self.weight_status[name] = REFOLDED

    def set_training(self, **changes) -> None:
        """Change the compile settings (loss, from_logits, optimizer, optimizer_config...)."""
        from .graph import TrainingConfig

        t = self.graph.training or TrainingConfig()
        for key, value in changes.items():
            if key == "optimizer_config":
                t.optimizer_config = {**t.optimizer_config, **value}
            else:
                setattr(t, key, value)
        t.assumed = False if "loss" in changes and self.graph.framework != "torch" else t.assumed
        self.graph.training = t

    # -- internals ------------------------------------------------------------
    def _added(self, node: Node) -> None:
        self.added.append(node.name)
        self._reinfer([node.name])
        if node.params:
            self.weight_status[node.name] = FRESH

    def _before(self, name: str) -> Optional[str]:
        keys = list(self.graph.nodes)
        i = keys.index(name)
        return keys[i - 1] if i else None

    def _insert(self, node: Node, after: Optional[str]) -> None:
        """Place ``node`` in the node order right after ``after`` (and after that node's fused activation)."""
        if node.name in self.graph.nodes:
            raise EditError(f"duplicate node name {node.name!r}")
        items = list(self.graph.nodes.items())
        at = 0 if after is None else [k for k, _ in items].index(after) + 1
        while at < len(items) and items[at][1].fused_into is not None and items[at][1].fused_into == after \
                and node.fused_into is None:
            at += 1
        items.insert(at, (node.name, node))
        self.graph.nodes = dict(items)
        self.graph.touch()

    def _unlink(self, name: str) -> None:
        """Drop a single-input node; its readers (and a graph output) read its input."""
        node = self.graph.nodes.pop(name)
        src = node.inputs[0] if node.inputs else None
        for n in self.graph.nodes.values():
            n.inputs = [src if x == name else x for x in n.inputs]
        self.graph.outputs = [src if x == name else x for x in self.graph.outputs]
        self.graph.touch()

    def _check_order(self) -> None:
        """Keep the node order topological after a rewiring (a stable topological sort)."""
        nodes = self.graph.nodes
        placed, order = set(), []
        pending = list(nodes)
        while pending:
            rest = []
            for name in pending:
                if all(split_ref(r)[0] in placed or split_ref(r)[0] not in nodes for r in nodes[name].inputs):
                    placed.add(name)
                    order.append(name)
                else:
                    rest.append(name)
            if len(rest) == len(pending):
                raise EditError(f"the edit makes a cycle through {', '.join(rest[:3])}")
            pending = rest
        self.graph.nodes = {k: nodes[k] for k in order}
        self.graph.touch()

    def _reinfer(self, start: list) -> None:
        """Size and count again every node downstream of ``start`` (in order); a node whose
        parameters change loses its weights (it is freshly initialised)."""
        g = self.graph
        dirty = set(start)
        for node in list(g.nodes.values()):
            if node.name not in dirty and not any(split_ref(r)[0] in dirty for r in node.inputs):
                continue
            if node.op == "input":
                continue
            in_shapes = [g.shape_of(r) for r in node.inputs]
            before = (list(node.output_shapes), node.params)
            trainable = node.params == 0 or node.trainable_params > 0
            node.notes = [n for n in node.notes if not n.startswith(("shape ", "parameters unknown"))]
            if node.fused_into is not None:
                node.output_shapes = list(g.nodes[node.fused_into].output_shapes)
            elif node.op != "unknown" or any(s is None for s in in_shapes):
                infer_node(node, in_shapes, g.layout)
            count_node(node, in_shapes, trainable, g.layout)
            if node.name in start or (list(node.output_shapes), node.params) != before:
                dirty.add(node.name)
            if node.params != before[1] and node.name not in self.added:
                if self.weight_status.get(node.name) != REFOLDED:
                    self.weight_status[node.name] = FRESH
                    if self.weights is not None:
                        self.weights.pop(node.name, None)
        g.touch()

