#!/usr/bin/env python3
"""Generates a tree shaped like a real Python package cache, deterministically.

Shape (from docs/rust-crates.md §10, measured on 50 popular wheels and 10 sdists unpacked
uv-style): about 40,000 files in about 11,000 directories, about 1 GB, median file about
2 KB, most files under 4 KB, a few files of tens of MB. Content is a mix of text-like data
(compresses about 3:1, like Python sources) and binary data (like compiled extensions), so
that zstd level 3 lands near the measured 0.36 ratio.

With `--shape wheels` it writes a few large compressible files instead (by default 4 of 256
MiB of the same text-like data, about 3:1): a cache holding big ML wheels and models, where a
restore spends its time decompressing, not creating files.

usage: make_tree.py DIR [--files N] [--total-mb M] [--seed S] [--shape packages|wheels]
"""

import argparse
import math
import os
import random


POOL_SIZE = 48 << 20
PATTERN = bytes((i * 7) & 0xFF for i in range(1 << 20))


def text_pool(rng: random.Random, words: list[bytes]) -> bytes:
    """Python-like text to slice files from; larger than zstd's window, so files do not
    compress against each other much more than real sources do."""
    pool = b" ".join(rng.choices(words, k=POOL_SIZE // 5))
    return pool[:POOL_SIZE]


def text_block(rng: random.Random, pool: bytes, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        start = rng.randrange(0, len(pool) - 4096)
        out += pool[start : start + min(size - len(out), len(pool) - start)]
    return bytes(out)


def binary_block(rng: random.Random, size: int) -> bytes:
    # Half random, half structured: roughly how a compiled extension compresses.
    structured = (PATTERN * (1 + (size // 2) // len(PATTERN)))[: size - size // 2]
    return rng.randbytes(size // 2) + structured


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--files", type=int, help="default 40,000 (packages) or 4 (wheels)")
    parser.add_argument("--total-mb", type=int, help="default 1000 (packages) or 1024 MiB (wheels)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--shape", choices=["packages", "wheels"], default="packages")
    args = parser.parse_args()
    if args.files is None:
        args.files = 40_000 if args.shape == "packages" else 4
    if args.total_mb is None:
        args.total_mb = 1000 if args.shape == "packages" else 1024

    rng = random.Random(args.seed)
    vocab_rng = random.Random(1)
    words = [
        bytes(vocab_rng.choice(b"abcdefghijklmnopqrstuvwxyz_") for _ in range(vocab_rng.randint(2, 10)))
        for _ in range(5000)
    ] + [b"\n    ", b"\n", b"(self,", b"):\n        return", b"def", b"import"] * 100
    pool = text_pool(rng, words)
    if args.shape == "wheels":
        large_files(args, rng, pool)
        return
    # Log-normal sizes: median 2 KiB, long tail, capped at 48 MiB.
    sizes = [min(int(math.exp(rng.gauss(math.log(2048), 2.25))), 48 << 20) for _ in range(args.files)]
    scale = (args.total_mb * 1_000_000) / sum(sizes)
    # Scale only the large files so the median stays where real caches have it.
    sizes = [s if s < 64 << 10 else int(s * scale) for s in sizes]

    files_per_dir = 4
    written = 0
    for index, size in enumerate(sizes):
        package = index // 400
        sub = (index // files_per_dir) % 10
        directory = os.path.join(args.dir, "archive-v0", f"pkg{package:03d}", f"mod{sub:02d}", f"d{index // files_per_dir}")
        os.makedirs(directory, exist_ok=True)
        is_binary = rng.random() < 0.3
        name = f"f{index}.so" if is_binary else f"f{index}.py"
        data = binary_block(rng, size) if is_binary else text_block(rng, pool, size)
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(data)
        written += size
    # uv-style links from wheels-v*/ into archive-v0/.
    links = os.path.join(args.dir, "wheels-v5", "pypi")
    os.makedirs(links, exist_ok=True)
    for package in range(0, len(sizes) // 400):
        os.symlink(f"../../archive-v0/pkg{package:03d}", os.path.join(links, f"pkg{package:03d}-1.0-py3-none-any"))
    print(f"{len(sizes)} files, {written / 1e6:.0f} MB in {args.dir}")


def large_files(args: argparse.Namespace, rng: random.Random, pool: bytes) -> None:
    """`--files` files of `--total-mb` MiB together."""
    files = args.files
    total = args.total_mb << 20
    directory = os.path.join(args.dir, "wheels-v5", "pypi", "torch")
    os.makedirs(directory, exist_ok=True)
    for index in range(files):
        with open(os.path.join(directory, f"part{index}.so"), "wb") as handle:
            handle.write(text_block(rng, pool, total // files))
    print(f"{files} files, {total / 1e6:.0f} MB in {args.dir}")


if __name__ == "__main__":
    main()
