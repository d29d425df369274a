"""``graft inspect``: the tensor table of a source, read from headers only (plus the NaN/Inf count
when it is cached, or when ``--scan`` asks for the one read of every value it takes)."""

from __future__ import annotations

import json

from app.cli import command
from app.cli.term import TerminalProgress, format_table


@command("inspect", help="list a source's tensors: name, role, named dims, dtype, shape")
def arguments(p) -> None:
    p.add_argument("source", help="'demo', a .safetensors file, a model folder, or a hub repo id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--scan",
        action="store_true",
        help="count NaN/Inf values, reading every weight once if that was not done before (cached after; "
        "by default only a cached count is shown: a transfer checks the values it reads anyway)",
    )
    p.add_argument("--headers-only", action="store_true", help="show no value count, not even a cached one")
    p.set_defaults(func=run)


def run(args) -> int:
    from core.architectures import describe, detect
    from core.architectures.check import source_problems
    from core.sources import open_source
    from core.sources.trust import shown  # names come from the file: control characters escaped

    source = open_source(args.source)
    spec, config = detect(source)
    roles = describe(source, spec)
    sizes = {k: v for k, v in spec.sizes(config).items() if k not in ("one", "qkv", "two")}
    problems = source_problems(source, spec, config)
    from core.provenance import scans_cached

    scan = None
    if not args.headers_only and (args.scan or scans_cached(source)):  # a cached scan reads nothing
        scan = source.scan(progress=TerminalProgress("checking values"))
    nonfinite = scan.nonfinite if scan else {}
    if args.json:
        print(
            json.dumps(
                {
                    "source": source.display_name,
                    "family": spec.family,
                    "sizes": sizes,
                    "parameters": source.num_parameters,
                    "bytes": source.total_bytes,
                    "files": [str(f) for f in source.files],
                    "problems": problems,
                    "nonfinite": None if scan is None else {"total": scan.total, "tensors": nonfinite},
                    "tensors": [
                        {
                            "name": r.name,
                            "role": r.role,
                            "layer": r.layer,
                            "dims": [list(a) for a in r.axes],
                            "dtype": r.dtype,
                            "shape": list(r.shape),
                            "nonfinite": nonfinite.get(r.name, 0),
                        }
                        for r in roles
                    ],
                },
                indent=2,
            )
        )
        return _verdict(problems, scan, quiet=True)
    print(shown(source.display_name))
    print(f"family {spec.family}   " + "  ".join(f"{k} {v}" for k, v in sizes.items()))
    print(
        f"{len(roles)} tensors in {len(source.files)} file(s), {source.num_parameters:,} parameters, "
        f"{source.total_bytes / 1e6:,.1f} MB"
    )
    print()
    rows = [
        (
            shown(r.name),
            r.role,
            "" if r.layer is None else r.layer,
            r.dims_label,
            r.dtype,
            "×".join(map(str, r.shape)) or "scalar",
        )
        for r in roles
    ]
    print(format_table(("name", "role", "layer", "dims", "dtype", "shape"), rows))
    print()
    if scan is not None:
        print("values: " + scan.summary())
    elif args.headers_only:
        print("values: not scanned (--headers-only)")
    else:
        print(
            f"values: not scanned yet (--scan reads all {source.total_bytes / 1e9:,.2f} GB once; "
            "a transfer checks every value it reads)"
        )
    return _verdict(problems, scan, quiet=False)


def _verdict(problems: list[str], scan, *, quiet: bool) -> int:
    """Exit 2 with the problems on stderr when the source cannot be transferred as it is."""
    import sys

    from core.sources.trust import shown  # problems quote tensor names: control characters escaped

    problems = [shown(p) for p in problems]
    for problem in problems[1:]:
        print(f"graft: problem: {problem}", file=sys.stderr)
    if scan is not None and scan.nonfinite and not quiet:
        print(
            f"graft: warning: the source has {scan.summary()}; a transfer refuses it unless you pass --allow-nonfinite",
            file=sys.stderr,
        )
    if problems:
        more = f" ({len(problems) - 1} more problem(s) above)" if len(problems) > 1 else ""
        print(f"graft: error: {problems[0]}{more}", file=sys.stderr)
        return 2
    return 0
