"""``graft inspect``: the tensor table of a source, read from headers only."""

from __future__ import annotations

import json

from app.cli.term import format_table


def register(sub) -> None:
    p = sub.add_parser("inspect", help="list a source's tensors: name, role, named dims, dtype, shape")
    p.add_argument("source", help="'demo', a .safetensors file, a model folder, or a hub repo id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from core.architectures import describe, detect
    from core.sources import open_source

    source = open_source(args.source)
    spec, config = detect(source)
    roles = describe(source, spec)
    sizes = {k: v for k, v in spec.sizes(config).items() if k not in ("one", "qkv")}
    if args.json:
        print(json.dumps({
            "source": source.display_name, "family": spec.family, "sizes": sizes,
            "parameters": source.num_parameters, "bytes": source.total_bytes,
            "files": [str(f) for f in source.files],
            "tensors": [{"name": r.name, "role": r.role, "layer": r.layer, "dims": [list(a) for a in r.axes],
                         "dtype": r.dtype, "shape": list(r.shape)} for r in roles],
        }, indent=2))
        return 0
    print(f"{source.display_name}")
    print(f"family {spec.family}   " + "  ".join(f"{k} {v}" for k, v in sizes.items()))
    print(f"{len(roles)} tensors in {len(source.files)} file(s), {source.num_parameters:,} parameters, "
          f"{source.total_bytes / 1e6:,.1f} MB")
    print()
    rows = [(r.name, r.role, "" if r.layer is None else r.layer, r.dims_label, r.dtype,
             "×".join(map(str, r.shape)) or "scalar") for r in roles]
    print(format_table(("name", "role", "layer", "dims", "dtype", "shape"), rows))
    return 0
