"""Partitions: hal.graph.partition cuts a placed graph into connected, acyclic, per-device groups."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import hal  # noqa: E402
from hal.graph.extract import GraphIndex, implicit_inputs  # noqa: E402
from hal.graph.model import load_model  # noqa: E402
from hal.graph.partition import partition  # noqa: E402
from hal.testing import transformer_block  # noqa: E402

F32 = TensorProto.FLOAT
ASC, KUN, CPU = "ascend:0", "kunlun:0", "cpu:0"


def _model(spec, outputs, *, inputs=("x",), weights=()):
    """spec: [(node name, op, [inputs])]; every value is float32 [2]; each node has one output,
    named after the node. weights: names of [2] initializers."""
    nodes = [helper.make_node(op, list(ins), [name], name=name) for name, op, ins in spec]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(i, F32, [2]) for i in inputs],
        [helper.make_tensor_value_info(o, F32, [2]) for o in outputs],
        [numpy_helper.from_array(np.ones(2, np.float32), w) for w in weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _partition(model, assignment):
    loaded = load_model(model)
    nodes = loaded.node_infos()
    index = GraphIndex(loaded.proto)
    parts = partition(nodes, assignment, graph_outputs=[o.name for o in loaded.outputs], boundary=index.boundary)
    return loaded, nodes, parts


def _groups(parts):
    return [sorted(n.name for n in p.nodes) for p in parts]


def _reads(node):
    names = [t.name for t in node.inputs if t is not None and t.name]
    if node.proto is not None:
        names += sorted(implicit_inputs(node.proto))
    return names


def _live(loaded, nodes) -> set[str]:
    """Nodes whose results reach a graph output."""
    producer = {t.name: n for n in nodes for t in n.outputs}
    live: set[str] = set()
    pending = [o.name for o in loaded.outputs]
    while pending:
        node = producer.get(pending.pop())
        if node is not None and node.name not in live:
            live.add(node.name)
            pending.extend(_reads(node))
    return live


def _check_invariants(loaded, nodes, parts, assignment):
    """Every property a partitioning must have, checked from first principles."""
    # each node that feeds a graph output in exactly one partition, on its assigned device; a
    # node that feeds none may be dropped with its partition (dead code)
    seen = [n.name for p in parts for n in p.nodes]
    assert len(seen) == len(set(seen)) and set(seen) <= {n.name for n in nodes}
    assert _live(loaded, nodes) <= set(seen)
    for p in parts:
        assert {assignment[n.name] for n in p.nodes} == {p.device}
    assert len({p.name for p in parts}) == len(parts)

    producer_part = {t.name: k for k, p in enumerate(parts) for n in p.nodes for t in n.outputs}
    initializers = loaded.initializers
    graph_outputs = {o.name for o in loaded.outputs}
    readers_part: dict[str, set[int]] = {}
    for k, p in enumerate(parts):
        for n in p.nodes:
            for name in _reads(n):
                readers_part.setdefault(name, set()).add(k)

    for k, p in enumerate(parts):
        members = {n.name for n in p.nodes}
        produced = {t.name for n in p.nodes for t in n.outputs}
        # connected: union-find over the producer -> consumer edges inside the partition
        parent = {m: m for m in members}

        def find(a):
            while parent[a] != a:
                a = parent[a]
            return a

        producer_node = {t.name: n.name for n in p.nodes for t in n.outputs}
        for n in p.nodes:
            for name in _reads(n):
                if name in producer_node:
                    parent[find(n.name)] = find(producer_node[name])
        assert len({find(m) for m in members}) == 1, f"{p.name} is not connected: {sorted(members)}"

        # inputs: exactly what it reads from outside, weights excluded, each once
        expected_inputs = {name for n in p.nodes for name in _reads(n)} - produced - initializers
        assert len(p.inputs) == len(set(p.inputs))
        assert set(p.inputs) == expected_inputs
        # outputs: what other partitions or the graph's outputs read, each once
        expected_outputs = {t for t in produced if t in graph_outputs or readers_part.get(t, set()) - {k}}
        assert len(p.outputs) == len(set(p.outputs))
        assert set(p.outputs) == expected_outputs
        # run order: every input comes from a graph input or an earlier partition
        for name in p.inputs:
            assert producer_part.get(name, -1) < k, f"{p.name} reads {name} from a later partition"

    # acyclic, checked independently of the order: depth-first search over partition edges
    edges = {k: set() for k in range(len(parts))}
    for k, p in enumerate(parts):
        for name in p.inputs:
            if name in producer_part and producer_part[name] != k:
                edges[producer_part[name]].add(k)
    state = {}

    def visit(k):
        state[k] = "open"
        for nxt in edges[k]:
            assert state.get(nxt) != "open", "cycle between partitions"
            if nxt not in state:
                visit(nxt)
        state[k] = "done"

    for k in edges:
        if k not in state:
            visit(k)


# -- fixed cases ---------------------------------------------------------------------------------


def test_diamond_splits_where_a_foreign_node_sits_between():
    """a(asc) -> b(cpu) -> d(asc), a -> c(asc) -> d: {a, c, d} together would be a cycle through b."""
    model = _model(
        [("a", "Relu", ["x"]), ("b", "Relu", ["a"]), ("c", "Relu", ["a"]), ("d", "Sum", ["b", "c"])],
        ["d"],
    )
    assignment = {"a": ASC, "b": CPU, "c": ASC, "d": ASC}
    loaded, nodes, parts = _partition(model, assignment)
    assert _groups(parts) == [["a", "c"], ["b"], ["d"]]
    assert [p.device for p in parts] == [ASC, CPU, ASC]
    first, middle, last = parts
    assert first.inputs == ["x"] and set(first.outputs) == {"a", "c"}
    assert middle.inputs == ["a"] and middle.outputs == ["b"]
    assert set(last.inputs) == {"b", "c"} and last.outputs == ["d"]
    _check_invariants(loaded, nodes, parts, assignment)


def test_chain_on_one_device_is_one_partition():
    spec = [(f"n{i}", "Relu", ["x" if i == 0 else f"n{i - 1}"]) for i in range(6)]
    model = _model(spec, ["n5"])
    assignment = {f"n{i}": ASC for i in range(6)}
    loaded, nodes, parts = _partition(model, assignment)
    assert len(parts) == 1
    assert parts[0].inputs == ["x"] and parts[0].outputs == ["n5"]
    _check_invariants(loaded, nodes, parts, assignment)


def test_alternating_devices_cut_at_every_crossing():
    spec = [(f"n{i}", "Relu", ["x" if i == 0 else f"n{i - 1}"]) for i in range(5)]
    model = _model(spec, ["n4"])
    assignment = {f"n{i}": (ASC if i % 2 == 0 else KUN) for i in range(5)}
    loaded, nodes, parts = _partition(model, assignment)
    assert _groups(parts) == [[f"n{i}"] for i in range(5)]
    assert [p.stage for p in parts] == [0, 1, 2, 3, 4]
    _check_invariants(loaded, nodes, parts, assignment)


def test_adjacent_same_device_nodes_with_foreign_nodes_elsewhere_share_a_partition():
    """a(asc) -> b(asc) -> c(cpu) -> d(cpu): two partitions, each holding its adjacent pair."""
    model = _model([("a", "Relu", ["x"]), ("b", "Relu", ["a"]), ("c", "Relu", ["b"]), ("d", "Relu", ["c"])], ["d"])
    assignment = {"a": ASC, "b": ASC, "c": CPU, "d": CPU}
    loaded, nodes, parts = _partition(model, assignment)
    assert _groups(parts) == [["a", "b"], ["c", "d"]]
    _check_invariants(loaded, nodes, parts, assignment)


def test_adjacent_same_device_pair_merges_when_a_foreign_node_only_feeds_the_second():
    """a(asc) -> b(asc), s(cpu) -> b: no path from a to b leaves ascend, so {a, b} is one partition."""
    model = _model([("a", "Relu", ["x"]), ("s", "Relu", ["x"]), ("b", "Sum", ["a", "s"])], ["b"])
    assignment = {"a": ASC, "s": CPU, "b": ASC}
    loaded, nodes, parts = _partition(model, assignment)
    _check_invariants(loaded, nodes, parts, assignment)
    assert sorted(_groups(parts)) == [["a", "b"], ["s"]]


def test_transformer_block_on_ascend_has_one_ascend_partition():
    sess = hal.InferenceSession(transformer_block(seq=4, hidden=16, heads=2), devices=[ASC])
    on_chip = [p for p in sess.plan.partitions if p.device == ASC]
    assert len(on_chip) == 1


def test_graph_output_read_inside_its_partition_is_still_an_output():
    model = _model([("a", "Relu", ["x"]), ("b", "Relu", ["a"])], ["a", "b"])
    assignment = {"a": ASC, "b": ASC}
    loaded, nodes, parts = _partition(model, assignment)
    assert len(parts) == 1
    assert set(parts[0].outputs) == {"a", "b"}
    _check_invariants(loaded, nodes, parts, assignment)


def test_weights_are_not_partition_inputs_and_unread_values_are_not_outputs():
    model = _model([("a", "Sum", ["x", "w"]), ("dead", "Relu", ["a"]), ("b", "Relu", ["a"])], ["b"], weights=("w",))
    assignment = {"a": ASC, "dead": ASC, "b": CPU}
    loaded, nodes, parts = _partition(model, assignment)
    first = next(p for p in parts if "a" in [n.name for n in p.nodes])
    assert first.inputs == ["x"]
    assert first.outputs == ["a"]  # 'dead' is read by nobody and is no graph output
    _check_invariants(loaded, nodes, parts, assignment)


def test_subgraph_captures_are_partition_inputs():
    """An If whose branches read 'r' from the outer scope depends on r's partition."""
    value = helper.make_tensor_value_info
    then_branch = helper.make_graph([helper.make_node("Relu", ["r"], ["t"], name="t_relu")], "then", [], [value("t", F32, [2])])
    else_branch = helper.make_graph([helper.make_node("Neg", ["r"], ["e"], name="e_neg")], "else", [], [value("e", F32, [2])])
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then_branch, else_branch=else_branch),
    ]
    graph = helper.make_graph(nodes, "g", [value("x", F32, [2]), value("cond", TensorProto.BOOL, [])], [value("y", F32, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assignment = {"relu": ASC, "if": CPU}
    loaded, infos, parts = _partition(model, assignment)
    assert _groups(parts) == [["relu"], ["if"]]
    assert set(parts[1].inputs) == {"cond", "r"}
    assert parts[0].outputs == ["r"]
    _check_invariants(loaded, infos, parts, assignment)


# -- random graphs -------------------------------------------------------------------------------

_DEVICES = (ASC, KUN, CPU)


@st.composite
def _placed_dags(draw, devices=_DEVICES):
    """A random DAG of Sum nodes over inputs x, y and weight w, with a random device per node."""
    count = draw(st.integers(1, 12))
    pool = ["x", "y", "w"]
    spec = []
    for i in range(count):
        reads = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
        spec.append((f"n{i}", "Sum", reads))
        pool.append(f"n{i}")
    extra = draw(st.lists(st.sampled_from([name for name, _, _ in spec]), max_size=3))
    outputs = list(dict.fromkeys([spec[-1][0], *extra]))
    assignment = {name: draw(st.sampled_from(devices)) for name, _, _ in spec}
    return _model(spec, outputs, inputs=("x", "y"), weights=("w",)), assignment


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_placed_dags())
def test_random_placements_give_connected_acyclic_partitions_with_exact_boundaries(case):
    model, assignment = case
    loaded, nodes, parts = _partition(model, assignment)
    _check_invariants(loaded, nodes, parts, assignment)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_placed_dags(devices=(ASC,)))
def test_one_device_gives_one_partition_per_connected_component(case):
    model, assignment = case
    loaded, nodes, parts = _partition(model, assignment)
    parent = {n.name: n.name for n in nodes}

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    producer = {t.name: n.name for n in nodes for t in n.outputs}
    for n in nodes:
        for name in _reads(n):
            if name in producer:
                parent[find(n.name)] = find(producer[name])
    outputs = {o.name for o in loaded.outputs}
    assert len(parts) == len({find(n.name) for n in nodes if any(t.name in outputs for t in n.outputs)})
    _check_invariants(loaded, nodes, parts, assignment)


def test_partitions_computing_nothing_anyone_reads_are_dropped():
    """'dead' feeds only 'dead2' on another device, and nothing reads 'dead2': neither runs."""
    model = _model([("a", "Relu", ["x"]), ("dead", "Relu", ["x"]), ("dead2", "Relu", ["dead"]), ("b", "Relu", ["a"])], ["b"])
    assignment = {"a": ASC, "dead": ASC, "dead2": CPU, "b": ASC}
    loaded, nodes, parts = _partition(model, assignment)
    assert _groups(parts) == [["a", "b"]] and parts[0].name == "p0_ascend0"
