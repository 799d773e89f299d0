#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpora of the libFuzzer targets (tests/fuzz/corpus/<target>/): small valid files of each kind
ace reads, from which libFuzzer mutates. Deterministic; rerun after changing a format:
    /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import gzip
import pathlib
import struct

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
SEPARATOR = b"\n=ACE=\n"  # fuzz_support.hpp: the files of a checkpoint directory in one input


def npy(array, version=(1, 0)):
    """The bytes of a .npy file as NumPy writes it."""
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), version=version, allow_pickle=False)
    return buffer.getvalue()


def idx(array):
    """The bytes of an IDX file of unsigned bytes: zero, zero, type 8, the axes, big-endian sizes, the values."""
    array = np.asarray(array, dtype=np.uint8)
    return bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape) + array.tobytes()


def fnv1a(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def checkpoint(tensors, values=(), signature="Dense<3, 2>"):
    """A checkpoint directory in one input: the manifest (as CheckpointWriter writes it), then t0.npy, t1.npy, ..."""
    lines = ["ace-checkpoint 1", f"signature {signature}"]
    lines += [f"value {k} {v}" for k, v in values]
    files = []
    for i, (name, array) in enumerate(tensors):
        data = npy(array)
        payload = np.ascontiguousarray(array).tobytes()
        dtype = np.lib.format.dtype_to_descr(array.dtype)
        shape = " ".join(str(n) for n in array.shape)
        lines.append(f"tensor {name} {dtype} t{i}.npy {fnv1a(payload):x} {array.ndim}" + (f" {shape}" if shape else ""))
        files.append(data)
    lines.append(f"end {len(tensors)}")
    return SEPARATOR.join([("\n".join(lines) + "\n").encode()] + files)


def files(*parts):
    """Several files in one input (a directory's files in the order the target names them)."""
    return SEPARATOR.join(parts)


def write(target, name, data):
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def main():
    rng = np.random.default_rng(2025)
    write("npy", "f4_2x3.npy", npy(rng.standard_normal((2, 3)).astype("<f4")))
    write("npy", "f8_5.npy", npy(rng.standard_normal(5)))
    write("npy", "i8_scalar.npy", npy(np.array(7, dtype="<i8")))
    write("npy", "i4_0x3.npy", npy(np.zeros((0, 3), dtype="<i4")))
    write("npy", "f4_2x2x2_v2.npy", npy(np.arange(8, dtype="<f4").reshape(2, 2, 2), version=(2, 0)))
    write("idx", "labels.idx", idx([3, 1, 4, 1, 5, 9]))
    write("idx", "images.idx", idx(rng.integers(0, 256, (2, 4, 3))))
    write("idx", "images.idx.gz", gzip.compress(idx(rng.integers(0, 256, (3, 5, 5))), mtime=0))
    weight = rng.standard_normal((2, 3)).astype("<f4")
    bias = rng.standard_normal(2).astype("<f4")
    write("checkpoint", "dense.ckpt", checkpoint([("0.weight", weight), ("0.bias", bias)]))
    # the motion-capture release: edges, three splits of (trial, start frame), then the trials [frames, joints, 3]
    trials = [rng.standard_normal((12, 4, 3)), rng.standard_normal((10, 4, 3))]
    edges = np.array([[0, 1], [1, 2], [2, 3]], dtype="<i8")
    splits = [np.array(rows, dtype="<i8") for rows in ([[0, 0], [0, 2], [1, 1]], [[0, 4]], [[1, 3]])]
    write("mocap", "release.mocap", files(npy(edges), *(npy(s) for s in splits), *(npy(t) for t in trials)))
    # the N-body cache of 2 training systems of 5 particles: positions, velocities, targets [2, 5, 3], charges [2, 5]
    write("nbody_cache", "train2.nbody", files(*(npy(rng.standard_normal((2, 5, 3))) for _ in range(3)),
                                             npy(rng.choice([-1.0, 1.0], (2, 5)))))
    write("checkpoint", "state.ckpt", checkpoint([("lambda", rng.standard_normal(3)), ("step", np.array(12, "<i8"))],
                                                values=[("epoch", "4"), ("gamma", "0.5")], signature="trainer"))
    # the reference generator's validation split: loc, vel [systems, frames, 3, particles], charges [systems, n, 1]
    write("reference_nbody", "valid2.nbody", files(npy(rng.standard_normal((2, 41, 3, 5))),
                                                 npy(rng.standard_normal((2, 41, 3, 5))),
                                                 npy(rng.choice([-1.0, 1.0], (2, 5, 1)))))
    # the training state (tests/fuzz/corpus/training_state/) comes from the target itself: see training_state.cpp
    # command lines: the parser's number (0 nbody, 1 mocap, 2 rotated_images, 3 ace_toy), then the arguments split at NUL bytes
    def cli(parser, *args):
        return bytes([parser]) + b"\0".join(a.encode() for a in args)
    write("cli", "nbody.args", cli(0, "--epochs", "10", "--methods", "strict,equality", "--seeds", "1,2", "--field",
                                   "0.5", "--checkpoint-steps", "3", "--resume", "--out", "runs"))
    write("cli", "nbody-segnn.args", cli(0, "--preset", "paper", "--model", "segnn", "--gamma-opt", "sgd",
                                         "--dual-opt", "adam", "--device", "cuda", "--lr", "1e-3"))
    write("cli", "mocap.args", cli(1, "--preset", "paper", "--train", "100", "--delta", "20", "--batch", "5"))
    write("cli", "ace_toy.args", cli(3, "toy_out", "0.25", "1"))
    write("cli", "rotated_images.args", cli(2, "--tasks", "rotated", "--models", "p4,cnn", "--rotation", "quarter",
                                            "--epochs", "2", "--batch", "16", "--dual-lr", "0.02"))


if __name__ == "__main__":
    main()
