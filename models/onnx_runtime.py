"""Running an exported model with ONNX Runtime, without torch: the realtime app's default path starts fast.

Sessions never spin: ONNX Runtime's worker threads by default busy-wait between calls, which at a camera's
30 frames per second kept a whole core busy for work needing a twentieth of one (see the README's live
figures). With spinning off the throughput measured the same.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from models.description import check_classes, check_temperature
from models.errors import CheckpointError

METADATA_KEY = "fer_emotion"
PRECISIONS = ("int8", "fp32")  # an export's arithmetic: quantized (models.quantize) or as trained


def sealed_model(proto, meta: dict) -> bytes:
    """The bytes of an ONNX model carrying ``meta`` as its description and, in it, the SHA-256 and length of the
    model serialized without that description (``graph_sha256``, ``graph_bytes``). Protobuf writes fields in number
    order, the graph before the metadata, so those bytes are the file's first ``graph_bytes``: loading checks them
    (check_graph_digest) and a damaged file is refused instead of giving wrong answers."""
    del proto.metadata_props[:]
    body = proto.SerializeToString()
    meta = {**meta, "graph_sha256": hashlib.sha256(body).hexdigest(), "graph_bytes": len(body)}
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    data = proto.SerializeToString()
    if data[:len(body)] != body:  # pragma: no cover - protobuf's field order is part of its wire format
        raise RuntimeError("the ONNX model's description is not written after its graph")
    return data


def check_graph_digest(path: str | Path, meta: dict) -> None:
    """CheckpointError when the model's bytes do not match the digest its description carries (sealed_model);
    an export made without one passes."""
    if "graph_sha256" not in meta:
        return
    try:
        n = int(meta["graph_bytes"])
        with open(path, "rb") as fh:
            body = fh.read(n)
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: cannot check its digest ({exc})") from exc
    if len(body) != n or hashlib.sha256(body).hexdigest() != meta["graph_sha256"]:
        raise CheckpointError(f"{path} is damaged: its graph does not match the digest saved with it (export it "
                              "again, or copy the repository's weights/ again)")


def checkpoint_digest(path: str | Path) -> str:
    """SHA-256 of a checkpoint file: an export records it, so a stale export is recognised as such."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_digests(meta: dict) -> list[str] | None:
    """The SHA-256 digests of the checkpoints an export was made from, as its metadata records them: one for a
    checkpoint's export, one per member (in order) for an ensemble's; None when it does not say."""
    if "members" in meta:
        members = meta["members"]
        if not isinstance(members, list) or not all(isinstance(m, dict) and isinstance(m.get("sha256"), str)
                                                    for m in members):
            return None
        return [m["sha256"] for m in members]
    digest = meta.get("checkpoint_sha256")
    return [digest] if isinstance(digest, str) else None


def export_precision(meta: dict) -> str:
    """The precision an export's metadata records: "int8" for a quantized one (models.quantize), "fp32" for a
    plain export, which records none."""
    return meta.get("precision", "fp32")


def ensemble_digest(digests: list[str]) -> str:
    """One SHA-256 for an ensemble of checkpoints with these digests (in order): names its cached export."""
    return hashlib.sha256(("ensemble\n" + "\n".join(digests)).encode()).hexdigest()


def session_options(threads: int):
    """CPU session options: ``threads`` intra-op threads that sleep instead of spinning while idle."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def open_session(path: str | Path, threads: int = 1):
    """An ONNX Runtime CPU session for an exported model, and the checkpoint description it carries."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own types for missing or malformed files
        raise CheckpointError(f"{path} is not a readable ONNX model ({str(exc).splitlines()[0]})") from exc
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise CheckpointError(f"{path} is not an ONNX model exported by this project (no {METADATA_KEY} metadata)")
    try:
        meta = json.loads(props[METADATA_KEY])
    except ValueError as exc:
        raise CheckpointError(f"{path}: its {METADATA_KEY} metadata is not JSON") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its {METADATA_KEY} metadata is not a mapping")
    check_graph_digest(path, meta)
    check_export(session, meta, str(path))
    return session, meta


def check_export(session, meta: dict, where: str) -> None:
    """CheckpointError unless the exported graph and its description agree: one input ``faces`` of shape
    (n, 1, size, size) for the preprocessing's size, one output per class name, a valid temperature, valid
    readability limits (where it has them) and a known precision. The metadata is only text beside the graph, so
    it is checked against the graph itself."""
    # numpy and OpenCV load here, with ONNX Runtime, not with models.onnx_export (whose Ctrl-C ends in fercore.cli.run)
    from fercore.readability import ReadabilityLimits
    from models.preprocessing import Preprocessing

    try:
        for key in ("classes", "preprocessing"):
            if key not in meta:
                raise ValueError(f"no {key!r} in its description")
        prep = Preprocessing.from_dict(meta["preprocessing"])
        check_temperature(meta.get("temperature", 1.0))
        if export_precision(meta) not in PRECISIONS:
            raise ValueError(f"unknown precision {meta['precision']!r} (not one of {', '.join(PRECISIONS)})")
        if "readability" in meta:
            ReadabilityLimits.from_dict(meta["readability"])
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != "faces" or len(outputs) < 1:
            raise ValueError("the graph does not take one input named 'faces'")
        shape = list(inputs[0].shape)
        if len(shape) != 4 or shape[1:] != [1, prep.size, prep.size]:
            raise ValueError(f"the graph takes input of shape {shape}, the description says "
                             f"[n, 1, {prep.size}, {prep.size}]")
        out_shape = list(outputs[0].shape)
        if len(out_shape) != 2:
            raise ValueError(f"the graph's output has shape {out_shape}, not (faces, classes)")
        check_classes(meta["classes"], out_shape[1] if isinstance(out_shape[1], int) else None)
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc}") from None


def read_metadata(path: str | Path) -> dict:
    """The checkpoint description stored in an exported ONNX file, checked as open_session checks it
    (CheckpointError for a file that is not this project's export, or is damaged)."""
    return open_session(path)[1]
