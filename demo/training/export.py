"""Export a trained network to one ONNX file with its pre-processing inside.

The graph takes float32 pixel values (N, 1, rows, columns) at their own
resolution, resizes them (antialiased linear), builds the channels (windows of
the slice and of its neighbours within the batch, or a per-image
standardisation) and ends in sigmoid probabilities and heatmaps.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch
from onnx import TensorProto, compose, helper

from demo.training.nets import EvidenceNet

OPSET = 18


def _const(
    name: str, values: Sequence[float] | Sequence[int], dtype: int
) -> onnx.NodeProto:
    return helper.make_node(
        "Constant",
        [],
        [name],
        value=helper.make_tensor(name + "_value", dtype, [len(values)], list(values)),
    )


def _scalar(name: str, value: float) -> onnx.NodeProto:
    return helper.make_node(
        "Constant",
        [],
        [name],
        value=helper.make_tensor(name + "_v", TensorProto.FLOAT, [], [value]),
    )


def _resize_nodes(height: int, width: int) -> list[onnx.NodeProto]:
    return [
        helper.make_node("Shape", ["pixels"], ["in_shape"]),
        _const("nc_start", [0], TensorProto.INT64),
        _const("nc_end", [2], TensorProto.INT64),
        helper.make_node("Slice", ["in_shape", "nc_start", "nc_end"], ["nc"]),
        _const("hw", [height, width], TensorProto.INT64),
        helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
        helper.make_node(
            "Resize",
            ["pixels", "", "", "sizes"],
            ["resized"],
            mode="linear",
            antialias=1,
            coordinate_transformation_mode="half_pixel",
        ),
    ]


def window_pre_graph(
    height: int, width: int, channels: Sequence[tuple[str, float, float, int]]
) -> onnx.ModelProto:
    """Resize, then window each channel of slice ``i + offset`` (edges repeat)."""
    nodes = _resize_nodes(height, width)
    nodes += [
        helper.make_node("Shape", ["resized"], ["r_shape"]),
        _const("zero", [0], TensorProto.INT64),
        _const("one", [1], TensorProto.INT64),
        helper.make_node("Slice", ["r_shape", "zero", "one"], ["n1"]),
        helper.make_node("Squeeze", ["n1"], ["n"]),
        helper.make_node(
            "Constant",
            [],
            ["i0"],
            value=helper.make_tensor("i0v", TensorProto.INT64, [], [0]),
        ),
        helper.make_node(
            "Constant",
            [],
            ["i1"],
            value=helper.make_tensor("i1v", TensorProto.INT64, [], [1]),
        ),
        helper.make_node("Range", ["i0", "n", "i1"], ["idx"]),
        helper.make_node("Sub", ["n", "i1"], ["last"]),
    ]
    outputs = []
    for k, (name, centre, width_hu, offset) in enumerate(channels):
        source = "resized"
        if offset:
            nodes += [
                helper.make_node(
                    "Constant",
                    [],
                    [f"off{k}"],
                    value=helper.make_tensor(
                        f"off{k}v", TensorProto.INT64, [], [offset]
                    ),
                ),
                helper.make_node("Add", ["idx", f"off{k}"], [f"sh{k}"]),
                helper.make_node("Max", [f"sh{k}", "i0"], [f"lo{k}"]),
                helper.make_node("Min", [f"lo{k}", "last"], [f"cl{k}"]),
                helper.make_node("Gather", ["resized", f"cl{k}"], [f"nb{k}"], axis=0),
            ]
            source = f"nb{k}"
        low = centre - width_hu / 2
        nodes += [
            _scalar(f"low{k}", low),
            _scalar(f"wid{k}", width_hu),
            _scalar(f"zf{k}", 0.0),
            _scalar(f"of{k}", 1.0),
            helper.make_node("Sub", [source, f"low{k}"], [f"a{k}"]),
            helper.make_node("Div", [f"a{k}", f"wid{k}"], [f"b{k}"]),
            helper.make_node("Clip", [f"b{k}", f"zf{k}", f"of{k}"], [f"ch_{name}"]),
        ]
        outputs.append(f"ch_{name}")
    nodes.append(helper.make_node("Concat", outputs, ["x"], axis=1))
    return _model(nodes, height, width, len(channels))


def standardise_pre_graph(height: int, width: int) -> onnx.ModelProto:
    """Resize, then (x - mean) / sqrt(var + 1e-6) per image."""
    nodes = _resize_nodes(height, width)
    nodes += [
        _const("axes", [1, 2, 3], TensorProto.INT64),
        helper.make_node("ReduceMean", ["resized", "axes"], ["mean"], keepdims=1),
        helper.make_node("Sub", ["resized", "mean"], ["centred"]),
        helper.make_node("Mul", ["centred", "centred"], ["sq"]),
        helper.make_node("ReduceMean", ["sq", "axes"], ["var"], keepdims=1),
        _scalar("eps", 1e-6),
        helper.make_node("Add", ["var", "eps"], ["var_eps"]),
        helper.make_node("Sqrt", ["var_eps"], ["std"]),
        helper.make_node("Div", ["centred", "std"], ["x"]),
    ]
    return _model(nodes, height, width, 1)


def _model(
    nodes: list[onnx.NodeProto], height: int, width: int, channels: int
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "preprocess",
        [
            helper.make_tensor_value_info(
                "pixels", TensorProto.FLOAT, ["N", 1, "H", "W"]
            )
        ],
        [
            helper.make_tensor_value_info(
                "x", TensorProto.FLOAT, ["N", channels, height, width]
            )
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def post_graph(findings: int) -> onnx.ModelProto:
    """Sigmoid of the pooled logit and of the evidence map."""
    nodes = [
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
        helper.make_node("Sigmoid", ["evidence"], ["heatmap"]),
    ]
    graph = helper.make_graph(
        nodes,
        "postprocess",
        [
            helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", findings]),
            helper.make_tensor_value_info(
                "evidence", TensorProto.FLOAT, ["N", findings, "h", "w"]
            ),
        ],
        [
            helper.make_tensor_value_info(
                "probability", TensorProto.FLOAT, ["N", findings]
            ),
            helper.make_tensor_value_info(
                "heatmap", TensorProto.FLOAT, ["N", findings, "h", "w"]
            ),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def export(
    net: EvidenceNet,
    pre: onnx.ModelProto,
    example: torch.Tensor,
    target: Path,
    *,
    description: str,
) -> None:
    """Write ``pre`` + ``net`` + sigmoid as one ONNX file at ``target``."""
    net.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.onnx"
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=["x"],
            output_names=["logit", "evidence"],
            dynamic_axes={"x": {0: "N"}, "logit": {0: "N"}, "evidence": {0: "N"}},
            opset_version=OPSET,
            dynamo=False,
        )
        body = onnx.load(str(path))
    pre.ir_version = body.ir_version
    post = post_graph(int(net.head.out_channels))
    post.ir_version = body.ir_version
    merged = compose.merge_models(pre, body, io_map=[("x", "x")])
    merged = compose.merge_models(
        merged, post, io_map=[("logit", "logit"), ("evidence", "evidence")]
    )
    merged.graph.name = "radtriage_demo"
    merged.doc_string = description
    merged.producer_name = "radtriage-train"
    onnx.checker.check_model(merged)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(merged, str(target))
