"""Store an ONNX model's float32 weights as float16 (half the file size) with a Cast back to float32 in the graph,
so inference still runs in float32 and onnxruntime folds the casts at load time.

    python -m training.attributes.onnx_fp16 IN.onnx OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def store_fp16(src: str, dst: str, min_size: int = 16) -> None:
    model = onnx.load(src)
    graph = model.graph
    casts, keep = [], []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype != np.float32 or array.size < min_size:
            keep.append(init)
            continue
        half_name = init.name + "_fp16"
        keep.append(numpy_helper.from_array(array.astype(np.float16), half_name))
        casts.append(helper.make_node("Cast", [half_name], [init.name], to=onnx.TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, dst)


if __name__ == "__main__":
    store_fp16(sys.argv[1], sys.argv[2])
