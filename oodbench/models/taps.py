"""Inner outputs of compiled models, where forward hooks cannot reach.

A :class:`~oodbench.models.backbones.Backbone` reads a Python module's layers with forward hooks. A
``torch.export`` program and a TorchScript module run their whole forward as one compiled graph, so a hook on a
submodule never fires. Both graphs still say which module produced each value, and a *tap* adds those values
to the graph's outputs:

- :class:`ExportTaps` (``.pt2``): every node of an exported graph carries ``nn_module_stack`` (the module paths
  it ran under); a module's output is the last node under its path, its input the first argument of the first
  node under it. Any module path of the program can be read (``stage1.res.0`` as well as ``stage1``).
- :class:`ScriptTaps` (TorchScript): the forward graph calls each direct child as ``prim::CallMethod``; the
  call's result is the child's output, its argument the child's input. Only direct children can be read
  (a child's insides run inside its own compiled method); the graph with the extra outputs is run by
  TorchScript's interpreter (``torch._C._jit_interpret_graph``, autograd intact for input gradients).

Both expose ``tap_paths()`` (what can be read, shallow to deep) and ``forward_taps(x, outputs, inputs)``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


class ExportTaps(nn.Module):
    """A ``torch.export`` program (``ExportedProgram.module()``) whose module outputs can be read."""

    def __init__(self, graph_module: nn.Module):
        super().__init__()
        self.program = graph_module
        self._order, self._last, self._first = self._scopes()
        self._tapped: dict[tuple, nn.Module] = {}

    def _scopes(self) -> tuple[list[str], dict[str, torch.fx.Node], dict[str, torch.fx.Node]]:
        order: list[str] = []
        last: dict[str, torch.fx.Node] = {}
        first: dict[str, torch.fx.Node] = {}
        for node in self.program.graph.nodes:
            if node.op != "call_function":
                continue
            for path, _ in (node.meta.get("nn_module_stack") or {}).values():
                if not path:
                    continue
                if path not in first:
                    order.append(path)
                    first[path] = node
                last[path] = node
        return order, last, first

    def tap_paths(self) -> list[str]:
        return list(self._order)

    def get_submodule(self, target: str) -> nn.Module:
        """The program's module at ``target`` (its parameters, e.g. a head's weight), as in the original."""
        return self.program.get_submodule(target) if target else self

    def train(self, mode: bool = True) -> ExportTaps:
        """An exported program runs in the mode it was exported in (``torch.export`` refuses ``train()``)."""
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)

    def _input_of(self, path: str) -> torch.fx.Node:
        arg = self._first[path].args[0]
        if not isinstance(arg, torch.fx.Node):
            raise ValueError(f"the input of {path!r} is not a tensor of the graph")
        return arg

    def _with_outputs(self, outputs: tuple[str, ...], inputs: tuple[str, ...]) -> nn.Module:
        """A copy of the program that returns ``(logits, *outputs, *inputs)`` as a flat tuple (cached)."""
        device = next(iter(self.program.parameters()), torch.empty(0)).device
        key = (outputs, inputs, str(device))
        if key not in self._tapped:  # a copy of the program as it is now (device, mode)
            tapped = copy.deepcopy(self.program)
            nodes = {n.name: n for n in tapped.graph.nodes}
            extra = [nodes[self._last[p].name] for p in outputs] + [nodes[self._input_of(p).name] for p in inputs]
            out = tapped.graph.output_node()
            flat = out.args[0]
            logits = flat[0] if isinstance(flat, (tuple, list)) else flat
            tapped.graph._codegen = torch.fx.graph.CodeGen()  # flat in, flat out: no pytree spec  # noqa: SLF001
            out.args = ((logits, *extra),)
            tapped.recompile()
            self._tapped[key] = tapped
        return self._tapped[key]

    def forward_taps(
        self, x: torch.Tensor, outputs: Sequence[str], inputs: Sequence[str] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``(logits, {path: output}, {path: input})`` in one pass."""
        logits, *rest = self._with_outputs(tuple(outputs), tuple(inputs))(x)
        return logits, dict(zip(outputs, rest)), dict(zip(inputs, rest[len(outputs) :]))


def child_calls(graph: torch._C.Graph) -> dict[str, torch._C.Node]:
    """Direct child name → the ``prim::CallMethod`` node that runs its ``forward`` in ``graph`` (first call)."""
    calls: dict[str, torch._C.Node] = {}
    for node in graph.nodes():
        if node.kind() != "prim::CallMethod" or node.s("name") != "forward":
            continue
        receiver = node.inputsAt(0).node()
        if receiver.kind() == "prim::GetAttr" and receiver.inputsAt(0).debugName().startswith("self"):
            calls.setdefault(receiver.s("name"), node)
    return calls


class ScriptTaps(nn.Module):
    """A TorchScript module whose direct children's outputs (and inputs) can be read."""

    def __init__(self, script: torch.jit.ScriptModule):
        super().__init__()
        self.script = script
        self._calls = self._child_calls()
        self._graphs: dict[tuple, torch._C.Graph] = {}

    def _child_calls(self) -> dict[str, torch._C.Node]:
        return child_calls(self.script.forward.graph)

    def tap_paths(self) -> list[str]:
        return list(self._calls)

    def get_submodule(self, target: str) -> nn.Module:
        """The scripted module at ``target`` (ScriptModules lack ``get_submodule``: walked by attribute)."""
        module: nn.Module = self.script if target else self
        for part in target.split(".") if target else ():
            module = getattr(module, part)
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.script(x)

    def _graph(self, outputs: tuple[str, ...], inputs: tuple[str, ...]) -> torch._C.Graph:
        """A copy of the forward graph that also returns the children's ``outputs`` and ``inputs`` (cached)."""
        key = (outputs, inputs)
        if key not in self._graphs:
            graph = self.script.forward.graph.copy()
            calls = child_calls(graph)  # the copy's own nodes
            for path in outputs:
                graph.registerOutput(calls[path].output())
            for path in inputs:
                graph.registerOutput(calls[path].inputsAt(1))
            self._graphs[key] = graph
        return self._graphs[key]

    def forward_taps(
        self, x: torch.Tensor, outputs: Sequence[str], inputs: Sequence[str] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        graph = self._graph(tuple(outputs), tuple(inputs))
        flat = torch._C._jit_interpret_graph(graph, (self.script._c, x))  # noqa: SLF001
        logits, *rest = flat if isinstance(flat, tuple) else (flat,)
        return logits, dict(zip(outputs, rest)), dict(zip(inputs, rest[len(outputs) :]))
