"""Edits of a quantized step graph that the quantizer does not make: the embedding lookup made integer.

    python -c "from quantize.graph import integer_embedding; print(len(integer_embedding(open('m.tflite','rb').read())))"

ai-edge-quantizer has no static (integer in, integer out) config for EMBEDDING_LOOKUP, so a static
recipe leaves it float: a float table, a float lookup, then a QUANTIZE of the looked-up rows. Looking
rows up in the table quantized on that QUANTIZE's grid gives exactly the same integers (each row is
quantized once instead of once per step), so the pair becomes one GATHER over an integer table
(GATHER, not EMBEDDING_LOOKUP: LiteRT's EMBEDDING_LOOKUP reads no int16 table).
"""

from __future__ import annotations

import numpy as np

from pxby_edge.errors import ModelFileError

_INT_TYPES = {"INT8": (np.int8, -128, 127), "INT16": (np.int16, -32768, 32767)}


def integer_embedding(model: bytes) -> bytes:
    """``model`` with each float EMBEDDING_LOOKUP + QUANTIZE pair turned into an integer GATHER."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from quantize.metadata import inline_buffers

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    inline_buffers(m, model)
    ops = schema.BuiltinOperator
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    changed = False
    for graph in m.subgraphs:
        kinds = [max(m.operatorCodes[op.opcodeIndex].builtinCode, m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
                 for op in graph.operators]
        consumers: dict = {}
        for k, op in enumerate(graph.operators):
            for i in op.inputs:
                consumers.setdefault(int(i), []).append(k)
        drop = set()
        for k, op in enumerate(graph.operators):
            if kinds[k] != ops.EMBEDDING_LOOKUP:
                continue
            ids, table = int(op.inputs[0]), int(op.inputs[1])
            out = int(op.outputs[0])
            users = consumers.get(out, [])
            if len(users) != 1 or kinds[users[0]] != ops.QUANTIZE or types.get(graph.tensors[table].type) != "FLOAT32":
                continue
            quant = graph.operators[users[0]]
            target = graph.tensors[int(quant.outputs[0])]
            kind = types.get(target.type)
            if kind not in _INT_TYPES or len(target.quantization.scale) != 1:
                continue
            _quantize_table(m, graph.tensors[table], target, kind)
            op.opcodeIndex = _opcode(m, schema, ops.GATHER)
            op.inputs = np.array([table, ids], dtype=np.int32)
            op.outputs = np.array([int(quant.outputs[0])], dtype=np.int32)
            options = schema.GatherOptionsT()
            options.axis, options.batchDims = 0, 0
            op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.GatherOptions, options
            drop.add(users[0])
            changed = True
        graph.operators = [op for k, op in enumerate(graph.operators) if k not in drop]
    if not changed:
        return model
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _quantize_table(m, table, target, kind: str) -> None:
    """The float table tensor rewritten in place as integers on ``target``'s (per-tensor) grid."""
    from ai_edge_litert import schema_py_generated as schema

    dtype, lo, hi = _INT_TYPES[kind]
    buf = m.buffers[table.buffer]
    if buf.data is None or not len(buf.data):
        raise ModelFileError("the embedding table is not stored inline in the quantized file")
    real = np.frombuffer(bytes(np.asarray(buf.data, np.uint8)), dtype="<f4")
    scale, zero = float(target.quantization.scale[0]), int(target.quantization.zeroPoint[0])
    q = np.clip(np.rint(real / scale) + zero, lo, hi).astype(dtype)
    buf.data = np.frombuffer(q.astype(q.dtype.newbyteorder("<")).tobytes(), dtype=np.uint8)
    table.type = getattr(schema.TensorType, kind)
    params = schema.QuantizationParametersT()
    params.scale, params.zeroPoint = [scale], [zero]
    table.quantization = params


def _opcode(m, schema, builtin: int) -> int:
    for k, code in enumerate(m.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return k
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    m.operatorCodes.append(code)
    return len(m.operatorCodes) - 1
