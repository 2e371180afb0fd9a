"""``python -m tests.local_backend``: run the local openEO backend in the foreground."""

import argparse
import logging
import warnings
from pathlib import Path

from .cdse import PROFILES
from .server import make_server


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Local openEO backend with synthetic Sentinel-1/2 data.")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (keep it on loopback)")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the chosen port here once listening")
    parser.add_argument("--work-dir", type=Path, help="where job results are written (default: a temp dir)")
    parser.add_argument("--resolution", type=float, default=20.0, help="pixel size of results in m (default 20)")
    parser.add_argument("--queue-seconds", type=float, nargs=2, default=[0.2, 0.2], metavar=("MIN", "MAX"))
    parser.add_argument("--run-seconds", type=float, nargs=2, default=[0.5, 0.5], metavar=("MIN", "MAX"))
    parser.add_argument("--scl-dilation", action="store_true", help="list CDSE's to_scl_dilation_mask process")
    parser.add_argument("--max-workers", type=int, default=2, help="jobs executing at the same time")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default",
                        help="behave like: default (estimates, budget) or cdse (concurrent job limit, no estimates, "
                        "lost Sentinel-1 jobs, out-of-memory jobs); /_control/reset comes back to it")  # fmt: skip
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # all-NaN medians of fully clouded pixels
    warnings.filterwarnings("ignore", category=FutureWarning)
    server = make_server(
        args.host,
        args.port,
        args.work_dir,
        resolution=args.resolution,
        queue_seconds=args.queue_seconds,
        run_seconds=args.run_seconds,
        scl_dilation=args.scl_dilation,
        max_workers=args.max_workers,
        profile=args.profile,
    )
    host, port = server.server_address[:2]
    if args.port_file:
        args.port_file.write_text(str(port))
    url = f"http://{host}:{port}"
    print(
        f"Local openEO backend on {url} (user demo, password demo, profile {args.profile}), "
        f"results in {server.backend.work_dir}",
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
