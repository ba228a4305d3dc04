"""Adding decoding side files (n-gram LM, lexicon) to an existing acoustic bundle."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from app.asr.manifest import Manifest
from export.onnx import finish_bundle


def attach_decoding_files(bundle: Path, *, lm: Path | None = None, lexicon: Path | None = None, **defaults: object) -> Manifest:
    """Copy the files into the bundle, point the decoding defaults at them, re-checksum.

    A file they replace under another name (`lm.arpa.gz` by `lm.klm`) leaves the bundle and its
    `side_files`, so a bundle never carries an LM or lexicon that nothing reads."""
    manifest = Manifest.load(bundle)
    decoding = manifest.decoding
    side = [name for name in manifest.side_files]
    replaced = []
    for src, field in ((lm, "lm"), (lexicon, "lexicon")):
        if src is None:
            continue
        if not src.is_file():
            raise FileNotFoundError(f"{src}: no such file")
        if (bundle / src.name).resolve() != src.resolve():
            shutil.copyfile(src, bundle / src.name)
        old = getattr(decoding, field)
        if old and old != src.name:
            replaced.append(old)
        decoding = replace(decoding, **{field: src.name})
        if src.name not in side:
            side.append(src.name)
    decoding = replace(decoding, **defaults)  # type: ignore[arg-type]
    still_named = {decoding.lm, decoding.lexicon, manifest.transitions}
    for name in replaced:
        if name not in still_named:
            side = [s for s in side if s != name]
            (bundle / name).unlink(missing_ok=True)
    manifest = replace(manifest, decoding=decoding)
    return finish_bundle(bundle, manifest, onnx_files={p: e.path for p, e in manifest.files.items()}, side_files=tuple(side))
