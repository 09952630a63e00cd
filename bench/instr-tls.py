#!/usr/bin/env python3
"""Instructions per request over TLS 1.3 + HTTP/2 (scenario d's protocol) with the harness's
`instr` tool, which measures HTTP/1.1 only: this runs its lib/instr.py with the proxy's
listener rendered for TLS (the template's `@@tls` lines), the probe made over h2 and the load
sent by h2load as HTTP/2 with 10 streams per connection. Options are instr's; use
`--conns 10` for d's 10 connections x 10 streams.

    python3 bench/instr-tls.py --bench-dir ../shared/bench [instr options...]

--bench-dir (or $PROXYBENCH_DIR) is the harness folder; default ../shared/bench from the
repository root, or ../../shared/bench from a worktree one folder further down."""
import os
import sys

sys.dont_write_bytecode = True  # keep the harness folder clean

# What changes between instr's HTTP/1.1 run and the TLS + h2 one. Each must occur exactly once
# in the harness's source: if it changed, stop rather than measure something else.
EDITS = [
    ('listen=f"127.0.0.1:{port}", tls="false",', 'listen=f"127.0.0.1:{port}", tls="true",'),
    ('open(cfg, "w").write(C.render(f.read(), values, False))',
     'open(cfg, "w").write(C.render(f.read(), values, True))'),
    ('url = f"http://127.0.0.1:{port}{ctx.args.path}"',
     'url = f"https://127.0.0.1:{port}{ctx.args.path}"'),
    ('ok, desc = C.curl_check(url, B.BODIES[ctx.args.path])',
     'ok, desc = C.curl_check(url, B.BODIES[ctx.args.path], h2=True)'),
    ('"h2load", "--h1", "-t1",', '"h2load", "-t1", "-m10",'),
]


def main(argv):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bench_dir = os.environ.get("PROXYBENCH_DIR")
    if not bench_dir:
        near = [os.path.join(repo, *up, "shared", "bench") for up in ([".."], ["..", ".."])]
        bench_dir = next((d for d in near if os.path.isdir(d)), near[0])
    if argv[:1] == ["--bench-dir"] and len(argv) > 1:
        bench_dir, argv = argv[1], argv[2:]
    lib = os.path.join(os.path.abspath(bench_dir), "lib")
    path = os.path.join(lib, "instr.py")
    try:
        with open(path) as f:
            source = f.read()
    except OSError as e:
        sys.exit(f"instr-tls: cannot read the harness ({e}); pass --bench-dir DIR")
    for old, new in EDITS:
        if source.count(old) != 1:
            sys.exit(f"instr-tls: {path} changed; expected once: {old}")
        source = source.replace(old, new)
    sys.path.insert(0, lib)
    module = {"__name__": "instr_tls", "__file__": path}
    exec(compile(source, path, "exec"), module)
    return module["main"](argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
